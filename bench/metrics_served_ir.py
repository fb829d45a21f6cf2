"""Instructions (callgrind Ir, deterministic) a served `sekisho serve` spends per warm
ExchangeToken with `[metrics] enabled` true and false (and `quiet`: metrics off, logging at
WARNING, so no audit line either): every thread of the process (the event loop, grpc core's
threads), for a fixed number of calls.

The server runs under `valgrind --tool=callgrind --instr-atstart=no`; after it is ready and the
echo is measured, the warm-up sends each of `--distinct` bench messages (bench/stack.py's
workload) once, so every cache holds them, then collection is switched on
(`callgrind_control -i on`), ghz sends exactly `--calls` calls round-robin over the same
messages, one at a time on one connection (so grpc's polling is the same per call on both
sides), collection is switched off and dumped. The echo (Health/Check) is measured the same way
first, as a control: metrics do not touch it. Check a dump for policy evaluations (the Wasm
code, `???:0x… [???]` in callgrind_annotate): a warm call makes none.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/metrics_served_ir.py [--calls 300] [--distinct 30]
        [--variants on,off,quiet] [--out /tmp/served-ir]

Prints Ir per call for each variant and scenario; the dumps are kept in `--out`
(callgrind_annotate --inclusive=yes FILE compares where the difference goes).
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import ECHO, EXCHANGE, run_ghz
from stack import (
    REPO,
    Idp,
    Server,
    Settings,
    exchange_messages,
    http_ok,
    policy_folder,
    stop_process,
    wait_until,
    workload,
    write_config,
)

SEKISHO = REPO / ".venv" / "bin" / "sekisho"
VARIANTS = {
    "on": Settings(workers=1),
    "off": Settings(workers=1, metrics=False),
    "quiet": Settings(workers=1, metrics=False, log_level="WARNING"),  # no audit line either
}
TOTALS = re.compile(r"^totals:\s+(\d+)", re.MULTILINE)


def _callgrind_control(*args: str) -> None:
    subprocess.run(["callgrind_control", *args], check=True, stdout=subprocess.DEVNULL)


def _total_ir(path: Path) -> int:
    match = TOTALS.search(path.read_text(errors="replace"))
    if match is None:
        raise SystemExit(f"no totals in {path}")
    return int(match[1])


def _start(root: Path, config: Path, out: Path, name: str) -> Server:
    if not (root / "keys").exists():
        subprocess.run([SEKISHO, "keys", "init", "--config", config], check=True, cwd=root)
    text = config.read_text()
    grpc = text.split('grpc_listen = "', 1)[1].split('"', 1)[0]
    http_base = text.split('http_listen = "', 1)[1].split('"', 1)[0]
    command = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out / name}.%p",
        str(SEKISHO),
        "serve",
        "--config",
        str(config),
    ]
    log = (out / f"{name}.log").open("ab")
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{http_base}"
    wait_until(
        lambda: http_ok(f"{url}/readyz"), name=name, process=process, seconds=900, interval=0.5
    )
    return Server(process, grpc, url, time.perf_counter() - started)


def _measured(
    server: Server, out: Path, name: str, call: str, *, messages: list, calls: int
) -> int:
    """Ir of exactly `calls` calls, one at a time: collection on, ghz, collection off, dump."""
    pid = str(server.process.pid)
    _callgrind_control("-i", "on", pid)
    run_ghz(name, server, call, messages, total=calls, concurrency=1, connections=1)
    _callgrind_control("-i", "off", pid)
    before = set(out.glob(f"*.{pid}*"))
    _callgrind_control("-d", name, pid)
    for _ in range(600):
        dumps = set(out.glob(f"*.{pid}*")) - before
        if dumps:
            time.sleep(1)
            return _total_ir(max(dumps, key=lambda p: p.stat().st_mtime))
        time.sleep(0.5)
    raise SystemExit(f"no dump for {name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--distinct", type=int, default=30)
    parser.add_argument("--variants", default="on,off")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "served-ir")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory(prefix="sekisho-served-ir-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        try:
            messages = exchange_messages(idp, load)[: args.distinct]
            policy_folder(root, load)
            for variant in args.variants.split(","):
                config = write_config(root, idp, VARIANTS[variant])
                server = _start(root, config, args.out, variant)
                try:
                    run_ghz(
                        "echo warm-up", server, ECHO, [{}], total=50, concurrency=1, connections=1
                    )
                    echo = _measured(
                        server, args.out, f"{variant}-echo", ECHO, messages=[{}], calls=args.calls
                    )
                    # The fill right before the measured calls: under valgrind a fill minutes
                    # earlier outlives the registry's decision_cache_seconds (60), and the
                    # measured calls would evaluate the policy again (Wasm JIT code in the dump).
                    run_ghz("fill", server, EXCHANGE, messages, total=len(messages),
                            concurrency=1, connections=1)  # fmt: skip
                    warm = _measured(server, args.out, f"{variant}-warm", EXCHANGE,
                                     messages=messages, calls=args.calls)  # fmt: skip
                finally:
                    stop_process(server.process, timeout=120)
                results[variant] = (echo / args.calls, warm / args.calls)
                print(f"IR {variant} echo {echo / args.calls:,.0f} warm {warm / args.calls:,.0f}")
        finally:
            idp.close()
    for variant, (echo, warm) in results.items():
        print(f"{variant:>4}: echo {echo:,.0f} Ir/call, warm {warm:,.0f} Ir/call")


if __name__ == "__main__":
    main()
