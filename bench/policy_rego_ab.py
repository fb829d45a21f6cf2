"""Wall time of `decide` with the policy modules of git revision REV and of the working tree,
side by side in one process: the same embedded engine code and data (bench/policy_latency.py's
1,000-entry registry and inputs, same seed), interleaved in blocks of 100 inputs in ABBA order so
load that comes and goes on a shared machine lands on both. Per input: one `decide`, and the
fastest of 5 back-to-back `decide`s (the input's cost with the scheduler out of the picture).

    PATH=bin:$PATH .venv/bin/python bench/policy_rego_ab.py [--baseline main] [--decisions 5000]

(bench/policy_ab.py compares two revisions of the engine code on one policy; this compares two
revisions of the policy on one engine.)
"""

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import policy_latency
from policy_equivalence import REPO, engine, modules_of
from sekisho.policy.wasm.engine import WasmPolicyEngine

BLOCK = 100
REPEAT = 5


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _block(
    loop: asyncio.AbstractEventLoop, policy: WasmPolicyEngine, docs: list[Any], repeat: int
) -> list[float]:
    """µs per input: the fastest of `repeat` back-to-back decides."""
    ns = time.perf_counter_ns
    samples = []
    for doc in docs:
        best = None
        for _ in range(repeat):
            started = ns()
            loop.run_until_complete(policy.decide(doc))
            elapsed = ns() - started
            best = elapsed if best is None else min(best, elapsed)
        samples.append((best or 0) / 1000)
    return samples


def _line(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90, p99 = (ordered[int(q * (len(ordered) - 1))] for q in (0.90, 0.99))
    return f"  {label:<34} {statistics.median(ordered):>7.1f} {p90:>7.1f} {p99:>7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main")
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args()
    rng = random.Random(20261123)  # noqa: S311 - the bench's inputs
    data = policy_latency.registry(1000, rng)
    docs = [policy_latency.document(rng, data) for _ in range(args.warmup + args.decisions)]
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        base = modules_of(args.baseline, Path(tmp))
        engines = {
            f"before ({args.baseline})": engine(base, data, Path(tmp) / "before"),
            "after (working tree)": engine(REPO / "policies/sekisho", data, Path(tmp) / "after"),
        }
    print(f"load average before: {_load()}")
    for policy in engines.values():
        _block(loop, policy, docs[: args.warmup], 1)
    results: dict[str, list[float]] = {}
    for repeat, suffix in ((1, "decide"), (REPEAT, f"decide, min of {REPEAT}")):
        for index, start in enumerate(range(args.warmup, len(docs), BLOCK)):
            order = list(engines.items())
            for label, policy in order if index % 2 == 0 else order[::-1]:
                samples = _block(loop, policy, docs[start : start + BLOCK], repeat)
                results.setdefault(f"{label} {suffix}", []).extend(samples)
    loop.close()
    print(f"{args.decisions} inputs, interleaved blocks of {BLOCK} (µs: median, p90, p99)")
    for label, samples in results.items():
        print(_line(label, samples))
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
