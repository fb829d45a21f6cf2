"""Metrics on vs off with the finest interleaving this machine allows: both servers run at once
(both pinned to CPU 0, the idle one costs nothing), and short bursts of `--calls` warm
ExchangeToken calls alternate between them (ABBA order), so drift of the shared machine (other
engineers' load, frequency) hits both sides within seconds. Prints per burst pair the on/off
throughput and server CPU µs per call, and the medians of the paired differences.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/metrics_interleaved.py [--pairs 12] [--calls 2000]
        [--variants on,off]   # or off,quiet: the audit line
        [--log-null]          # the servers' log to /dev/null instead of a file
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
from stack import Settings, start_server, write_config

VARIANTS = {
    "on": Settings(workers=1),
    "off": Settings(workers=1, metrics=False),
    "quiet": Settings(workers=1, metrics=False, log_level="WARNING"),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=12)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--variants", default="on,off")
    parser.add_argument("--log-null", action="store_true", help="server log to /dev/null")
    args = parser.parse_args()
    names = args.variants.split(",")
    print(f"load before {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="sekisho-interleaved-") as tmp:
        bench = et.Bench(Path(tmp), 1, 5)
        servers = {}
        try:
            for name in names:
                root = Path(tmp) / name
                root.mkdir()
                (root / "policies").symlink_to(Path(tmp) / "policies")
                if args.log_null:  # the server's stdout/stderr (stack.start_server) discarded
                    (root / "server.log").symlink_to(os.devnull)
                config = write_config(root, bench.idp, VARIANTS[name])
                servers[name] = start_server(root, config, bench.server_cpus)
            for name, server in servers.items():
                run_ghz(f"{name} fill", server, EXCHANGE, bench.messages,
                        total=len(bench.messages), cpus=bench.load_cpus)  # fmt: skip
            found: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
            for index in range(args.pairs):
                order = names if index % 2 == 0 else names[::-1]
                for name in order:
                    run = run_ghz(name, servers[name], EXCHANGE, bench.messages,
                                  total=args.calls, cpus=bench.load_cpus)  # fmt: skip
                    found[name].append((run.throughput, run.cpu_us_per_request))
                a, b = (found[name][-1] for name in names)
                print(f"PAIR {index:2d} {names[0]} {a[0]:6.0f}/s {a[1]:5.0f} us  "
                      f"{names[1]} {b[0]:6.0f}/s {b[1]:5.0f} us  "
                      f"cost {100 * (1 - a[0] / b[0]):+5.1f} % {a[1] - b[1]:+5.0f} us  "
                      f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
        finally:
            for server in servers.values():
                server.stop()
            bench.idp.close()
    first, second = (found[name] for name in names)
    shares = [100 * (1 - a[0] / b[0]) for a, b in zip(first, second, strict=True)]
    added = [a[1] - b[1] for a, b in zip(first, second, strict=True)]
    print(f"MEDIAN cost of {names[0]} over {names[1]}: {statistics.median(shares):+.1f} % "
          f"throughput, {statistics.median(added):+.0f} CPU us/call over {args.pairs} pairs; "
          f"{sum(s > 0 for s in shares)} of {len(shares)} pairs positive")  # fmt: skip
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
