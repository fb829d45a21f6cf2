"""Is `make bench`'s "cost of metrics" real? Warm ExchangeToken with `[metrics] enabled` true and
false, alternating, a fresh `sekisho serve` per run, on the build this checkout serves (or the one
PYTHONPATH names).

Variants (each round runs every one; the order rotates from round to round, so drift over the
period and the position in a round hit every variant alike):

  on        metrics on (the default): fill pass, warm-up, measured run
  off       `[metrics] enabled = false`, the same steps
  on_echo   metrics on, with `make bench`'s order: the echo scenario (a) on the same server
            first (warm-up and `--seconds` of Health/Check), then the steps of `on`
  off_echo  `off` with the echo first (`--echo-off`)

Server pinned to CPU 0, ghz to CPU 1 (exchange_throughput.py's pinning); CPU per request is the
server's utime + stime over the measured run. Prints every run, then per variant the median
req/s and CPU µs/req, and the load average before and after.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/metrics_ab.py [--rounds 4] [--seconds 5]
        [--variants on,off,on_echo]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exchange_throughput as et
from loadgen import ECHO
from stack import Settings

VARIANTS = {
    "on": (True, False),
    "off": (False, False),
    "on_echo": (True, True),
    "off_echo": (False, True),
}


def one_run(bench: et.Bench, variant: str, windows: int) -> tuple[float, float]:
    """The run's measured req/s and CPU µs/req; with `windows` > 1, that many measured runs back
    to back on the same server, each printed (does a server slow down as it serves?), the
    last one returned."""
    metrics, echo_first = VARIANTS[variant]
    server = bench.scenario(variant, Settings(workers=1, metrics=metrics))
    try:
        if echo_first:
            bench.measure(f"{variant} echo", server, ECHO, [{}], warm=1)
        run = bench.exchange(variant, server, warm_seconds=1, fill=True)
        for window in range(1, windows + 1):
            if windows > 1:
                cpu = run.cpu_us_per_request
                print(f"WINDOW {variant} {window - 1} {run.throughput:.0f}/s cpu {cpu:.0f}us")
            if window < windows:
                run = bench.exchange(variant, server, warm_seconds=0.2)
    finally:
        server.stop()
    return run.throughput, run.cpu_us_per_request


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--variants", default="on,off,on_echo")
    parser.add_argument("--windows", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    variants = args.variants.split(",")
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sekisho-metrics-ab-") as tmp:
        bench = et.Bench(Path(tmp), 1, args.seconds)
        try:
            for index in range(args.rounds):
                shift = index % len(variants)
                order = variants[shift:] + variants[:shift]
                for variant in order:
                    rate, cpu = one_run(bench, variant, args.windows)
                    results[variant].append((rate, cpu))
                    load = os.getloadavg()[0]
                    print(f"ROUND {index} {variant} {rate:.0f}/s cpu {cpu:.0f}us load {load:.2f}")
        finally:
            bench.idp.close()
    load_after = os.getloadavg()
    summary: dict[str, Any] = {"load_before": load_before, "load_after": load_after, "runs": {}}
    for variant, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        summary["runs"][variant] = {"runs": runs, "median_rate": rate, "median_cpu_us": cpu}
        print(f"MEDIAN {variant} {rate:.0f}/s cpu {cpu:.0f}us over {len(runs)} runs")
    print(f"LOAD before {load_before} after {load_after}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
