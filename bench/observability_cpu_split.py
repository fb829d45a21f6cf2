"""User and kernel CPU per served warm ExchangeToken, metrics on / off / off with logging at
WARNING: where the served cost of metrics and of the INFO audit line goes (callgrind counts only
user-space instructions; a line is also one `write` to the server's stderr, here a file as in
`make bench`). Fresh server per run, fill pass, then exactly `--calls` calls; rounds alternate
the variants in a rotating order. Prints utime and stime µs per call and voluntary context
switches per call, per run and as medians.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/observability_cpu_split.py [--rounds 3] \\
        [--calls 6000]
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exchange_throughput as et
from loadgen import EXCHANGE, run_ghz
from stack import Settings

VARIANTS = {
    "on": Settings(workers=1),
    "off": Settings(workers=1, metrics=False),
    "quiet": Settings(workers=1, metrics=False, log_level="WARNING"),
}
TICK = os.sysconf("SC_CLK_TCK")


def _times(pid: int) -> tuple[float, float, int]:
    """utime and stime in seconds, voluntary context switches, of the serving process."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    switches = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches"):
            switches = int(line.split()[1])
    return int(fields[11]) / TICK, int(fields[12]) / TICK, switches


def one_run(bench: et.Bench, variant: str, calls: int) -> tuple[float, float, float, float]:
    server = bench.scenario(variant, VARIANTS[variant])
    try:
        run_ghz("fill", server, EXCHANGE, bench.messages, total=len(bench.messages),
                cpus=bench.load_cpus)  # fmt: skip
        pid = server.process.pid
        user, system, switches = _times(pid)
        run = run_ghz(variant, server, EXCHANGE, bench.messages, total=calls, cpus=bench.load_cpus)
        user2, system2, switches2 = _times(pid)
    finally:
        server.stop()
    per = 1e6 / calls
    return (
        (user2 - user) * per,
        (system2 - system) * per,
        (switches2 - switches) / calls,
        run.throughput,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=6000)
    args = parser.parse_args()
    names = list(VARIANTS)
    found: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in names}
    print(f"load before {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="sekisho-cpu-split-") as tmp:
        bench = et.Bench(Path(tmp), 1, 5)
        try:
            for index in range(args.rounds):
                shift = index % len(names)
                for name in names[shift:] + names[:shift]:
                    user, system, switches, rate = one_run(bench, name, args.calls)
                    found[name].append((user, system, switches, rate))
                    print(f"ROUND {index} {name:>5}: user {user:6.0f} us  sys {system:5.0f} us  "
                          f"vcsw {switches:5.2f}/call  {rate:6.0f}/s  "
                          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
        finally:
            bench.idp.close()
    for name, runs in found.items():
        user, system, switches, rate = (statistics.median(r[i] for r in runs) for i in range(4))
        print(f"MEDIAN {name:>5}: user {user:6.0f} us  sys {system:5.0f} us  "
              f"vcsw {switches:5.2f}/call  {rate:6.0f}/s")  # fmt: skip
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
