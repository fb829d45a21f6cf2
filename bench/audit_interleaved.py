"""Where the audit line's time goes in a served warm exchange: several servers side by side (all
pinned to CPU 0; idle ones cost nothing), each a variant of the line's write path
(bench/audit_variant_server.py, or a source tree given as `name=PATH`), and rounds of
`--calls`-call warm ExchangeToken bursts, each round every variant once, the order reversed
every other round, so the shared machine's drift hits every side within seconds.

Per burst: throughput, server CPU µs per call (all threads), the loop (main) thread's CPU µs and
its voluntary / involuntary context switches per call (/proc/PID/task/*). Medians over rounds of
each variant's own ratio to the first variant of `--variants` (the reference, e.g. `quiet`).

    PATH=$PWD/bin:$PATH .venv/bin/python bench/audit_interleaved.py [--rounds 10] [--calls 2000]
        [--variants quiet,line,nowrite,prebuilt,oswrite,gilwrite,batch]
        [--variants quiet,on:BASE,on,on+nobatch]   # :TREE = another checkout; on+X = X, metrics on
"""

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exchange_throughput as et
from loadgen import EXCHANGE, run_ghz
from stack import CLK_TCK, Server, Settings, start_server, write_config

HOOK = str(Path(__file__).resolve().parent / "audit_variant_server.py")
QUIET = Settings(workers=1, metrics=False, log_level="WARNING")
LINE = Settings(workers=1, metrics=False)
SETTINGS = {
    "quiet": QUIET,
    "on": Settings(workers=1),
    "qon": Settings(workers=1, log_level="WARNING"),
}


@dataclass
class Threads:
    """The loop thread's and all threads' counters of one server."""

    loop_cpu: float
    cpu: float
    loop_voluntary: int
    loop_involuntary: int
    voluntary: int


def _threads(server: Server) -> Threads:
    loop_cpu = cpu = 0.0
    loop_v = loop_i = voluntary = 0
    for pid in server.pids():
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    stat = (task / "stat").read_text()
                    fields = stat[stat.rindex(")") + 2 :].split()
                    seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
                    status = dict(
                        line.split(":\t", 1)
                        for line in (task / "status").read_text().splitlines()
                        if ":\t" in line
                    )
                    v = int(status["voluntary_ctxt_switches"])
                    i = int(status["nonvoluntary_ctxt_switches"])
                    cpu += seconds
                    voluntary += v
                    if task.name == str(pid):
                        loop_cpu += seconds
                        loop_v += v
                        loop_i += i
    return Threads(loop_cpu, cpu, loop_v, loop_i, voluntary)


def _start(tmp: Path, bench: et.Bench, name: str) -> Server:
    """NAME: `quiet`, `on` or `qon` (settings as named, the line path as it is), any other a
    variant of audit_variant_server.py with metrics off; `on+VARIANT`: that variant with metrics
    on; `…:TREE`: `sekisho serve` of another checkout (no variant)."""
    variant, _, tree = name.partition(":")
    settings, _, hooked = variant.partition("+")
    if settings not in SETTINGS:
        settings, hooked = "", settings
    root = tmp / name.replace(":", "_").replace("/", "_").replace("+", "_")
    root.mkdir()
    (root / "policies").symlink_to(tmp / "policies")
    config = write_config(root, bench.idp, SETTINGS.get(settings, LINE))
    os.environ["AUDIT_VARIANT"] = hooked or "line"
    if tree:
        return start_server(root, config, bench.server_cpus, source=tree)
    return start_server(root, config, bench.server_cpus, hook=HOOK)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--variants", default="quiet,line,nowrite,prebuilt,oswrite,gilwrite,batch")
    args = parser.parse_args()
    names = args.variants.split(",")
    print(f"load before {os.getloadavg()}", flush=True)
    rows: dict[str, list[tuple[float, float, float, float, float]]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="sekisho-audit-") as tmp:
        bench = et.Bench(Path(tmp), 1, 5)
        servers: dict[str, Server] = {}
        try:
            for name in names:
                servers[name] = _start(Path(tmp), bench, name)
            for name, server in servers.items():
                run_ghz(f"{name} fill", server, EXCHANGE, bench.messages,
                        total=len(bench.messages), cpus=bench.load_cpus)  # fmt: skip
            for index in range(args.rounds):
                order = names if index % 2 == 0 else names[::-1]
                for name in order:
                    before = _threads(servers[name])
                    run = run_ghz(name, servers[name], EXCHANGE, bench.messages,
                                  total=args.calls, cpus=bench.load_cpus)  # fmt: skip
                    after = _threads(servers[name])
                    calls = run.requests or 1
                    rows[name].append((
                        run.throughput,
                        run.cpu_us_per_request,
                        (after.loop_cpu - before.loop_cpu) / calls * 1e6,
                        (after.loop_voluntary - before.loop_voluntary) / calls,
                        (after.loop_involuntary - before.loop_involuntary) / calls,
                    ))  # fmt: skip
                print(f"ROUND {index:2d} load {os.getloadavg()[0]:.2f}  " + "  ".join(
                    f"{n} {rows[n][-1][0]:5.0f}/s {rows[n][-1][1]:4.0f}us" for n in names
                ), flush=True)  # fmt: skip
        finally:
            for server in servers.values():
                server.stop()
            bench.idp.close()
    _report(names, rows)
    print(f"load after {os.getloadavg()}")


def _report(
    names: list[str], rows: dict[str, list[tuple[float, float, float, float, float]]]
) -> None:
    reference = rows[names[0]]
    print(f"\nmedians over {len(reference)} rounds; cost = 1 - throughput / {names[0]}'s, "
          "same round; CPU, loop CPU in µs per call; "
          "cs = loop thread context switches per call")  # fmt: skip
    print(f"{'variant':>16} {'req/s':>7} {'cost %':>7} {'+CPU':>6} {'CPU':>6} {'loopCPU':>8} "
          f"{'+loop':>6} {'vol cs':>7} {'invol cs':>8} {'>0':>4}")  # fmt: skip
    for name in names:
        mine = rows[name]
        cost = [100 * (1 - a[0] / b[0]) for a, b in zip(mine, reference, strict=True)]
        more = [a[1] - b[1] for a, b in zip(mine, reference, strict=True)]
        loop = [a[2] - b[2] for a, b in zip(mine, reference, strict=True)]
        med = [statistics.median(r[k] for r in mine) for k in range(5)]
        print(f"{name:>16} {med[0]:7.0f} {statistics.median(cost):+7.1f} "
              f"{statistics.median(more):+6.0f} {med[1]:6.0f} {med[2]:8.0f} "
              f"{statistics.median(loop):+6.0f} {med[3]:7.3f} {med[4]:8.3f} "
              f"{sum(c > 0 for c in cost):>2}/{len(cost)}")  # fmt: skip
    for name in names[1:]:
        cost = [100 * (1 - a[0] / b[0]) for a, b in zip(rows[name], reference, strict=True)]
        print(f"  {name} per round: " + ", ".join(f"{c:+.1f}" for c in cost))


if __name__ == "__main__":
    main()
