"""What a served warm ExchangeToken calls with `[metrics] enabled` true and false: cProfile call
counts per call, from a `sekisho serve` profiled whole (every Python function on the loop
thread), for a fixed number of calls. Counts are deterministic where times are not; the
functions only one side calls are what metrics add to a served call.

The server is this file run as bench/stack.py's BENCH_SRV hook (`python THIS CONFIG`): it runs
`sekisho serve` under cProfile and writes the stats at SIGUSR1 (then starts afresh), so the
driver (this file without arguments) takes stats around exactly `--calls` calls after a fill pass.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/metrics_served_counts.py [--calls 1000]
        [--compare on,off]   # or off,quiet: what the INFO audit line adds
"""

import argparse
import cProfile
import os
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT_ENV = "METRICS_COUNTS_OUT"


def serve(config: str) -> None:
    """The BENCH_SRV side: `sekisho serve --config CONFIG` under cProfile."""
    from sekisho.cli import main as cli

    profile = cProfile.Profile()

    def dump(*_: Any) -> None:
        profile.disable()
        profile.dump_stats(os.environ[OUT_ENV])
        profile.clear()
        profile.enable()

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["sekisho", "serve", "--config", config]
    profile.enable()
    try:
        cli()
    finally:
        profile.disable()


def _counts(path: Path) -> dict[str, int]:
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    found = {}
    for (filename, line, name), (_, calls, *_rest) in stats.items():
        short = filename.split("site-packages/")[-1].split("/server/")[-1]
        found[f"{short}:{line}({name})"] = calls
    return found


def _measure(bench: Any, variant: str, calls: int, out: Path) -> dict[str, int]:
    from loadgen import EXCHANGE, run_ghz
    from stack import Settings

    settings = {
        "on": Settings(workers=1),
        "off": Settings(workers=1, metrics=False),
        "quiet": Settings(workers=1, metrics=False, log_level="WARNING"),  # no audit line
    }[variant]
    os.environ[OUT_ENV] = str(out)
    os.environ["BENCH_SRV"] = str(Path(__file__).resolve())
    server = bench.scenario(variant, settings)
    try:
        run_ghz("fill", server, EXCHANGE, bench.messages, total=len(bench.messages))
        run_ghz("warm-up", server, EXCHANGE, bench.messages, total=calls)
        os.kill(server.process.pid, signal.SIGUSR1)  # start counting afresh
        time.sleep(2)
        run_ghz("measured", server, EXCHANGE, bench.messages, total=calls)
        os.kill(server.process.pid, signal.SIGUSR1)
        time.sleep(3)
    finally:
        server.stop()
    return _counts(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--compare", default="on,off", help="two of on, off, quiet")
    args = parser.parse_args()
    import exchange_throughput as et

    with tempfile.TemporaryDirectory(prefix="sekisho-counts-") as tmp:
        bench = et.Bench(Path(tmp), 1, 5)
        try:
            first, second = args.compare.split(",")
            on = _measure(bench, first, args.calls, Path(tmp) / "a.prof")
            off = _measure(bench, second, args.calls, Path(tmp) / "b.prof")
        finally:
            bench.idp.close()
    rows = sorted(
        ((on.get(k, 0) - off.get(k, 0), k) for k in set(on) | set(off)),
        key=lambda row: (-abs(row[0]), row[1]),
    )
    print(f"calls per exchange, {first} - {second} ({args.calls} calls each):")
    for diff, key in rows[: args.top]:
        if diff:
            print(
                f"{diff / args.calls:+8.3f} {on.get(key, 0) / args.calls:8.3f} "
                f"{off.get(key, 0) / args.calls:8.3f}  {key}"
            )
    print(f"functions called: {first} {sum(on.values()) / args.calls:,.1f} per call, "
          f"{second} {sum(off.values()) / args.calls:,.1f}")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        serve(sys.argv[1])
    else:
        main()
