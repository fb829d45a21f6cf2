"""Alternating A/B rounds of bench/ab_quick.py (echo, warm, all-miss; no pool_size = 2): base
and new take turns, each round one `ab_quick.py SECONDS --no-pool2` per side, the code under test
chosen by PYTHONPATH (this checkout's venv and bench scripts serve both sides). Prints every
round and the medians of server CPU µs per request and of the ratio to the same run's echo.

    PATH=/abs/bin:$PATH .venv/bin/python bench/hotpath5_ab.py BASE_CHECKOUT NEW_CHECKOUT \\
        [--rounds 6] [--seconds 3] [--json out.json]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULT = re.compile(r"^RESULT (\w+) (\d+)/s cpu (\d+)us ratio ([\d.]+)$")


def one_side(checkout: Path, seconds: float) -> dict[str, tuple[float, float, float]]:
    env = dict(os.environ, PYTHONPATH=str(checkout / "server"))
    out = subprocess.run(
        [sys.executable, str(BENCH / "ab_quick.py"), str(seconds), "--no-pool2"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = {}
    for line in out.splitlines():
        match = RESULT.match(line)
        if match:
            found[match[1]] = (float(match[2]), float(match[3]), float(match[4]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rounds: list[dict[str, object]] = []
    for number in range(args.rounds):
        for side, checkout in (("base", args.base), ("new", args.new)):
            load = os.getloadavg()[0]
            found = one_side(checkout.resolve(), args.seconds)
            rounds.append({"round": number + 1, "side": side, "load": load, "results": found})
            cells = "  ".join(f"{k} {v[1]:.0f}us {v[2]:.3f}" for k, v in found.items())
            print(f"round {number + 1} {side:<4} load {load:4.1f}  {cells}", flush=True)
    print("\nmedians (server CPU us per request / throughput ratio to the same run's echo)")
    for scenario in ("echo", "warm", "miss"):
        line = [f"{scenario:<5}"]
        for side in ("base", "new"):
            runs = [r["results"][scenario] for r in rounds if r["side"] == side]  # type: ignore[index]
            cpu = statistics.median(v[1] for v in runs)
            ratio = statistics.median(v[2] for v in runs)
            all_cpu = " ".join(f"{v[1]:.0f}" for v in runs)
            line.append(f"{side} {cpu:5.0f}us ratio {ratio:.3f} [{all_cpu}]")
        print("  ".join(line))
    if args.json:
        args.json.write_text(json.dumps(rounds, indent=1) + "\n")


if __name__ == "__main__":
    main()
