"""What shadow evaluation (and the decision log) cost live exchanges (issue 17).

In process, no network: the real verifier (behind the subject cache), the embedded engine (OPA
Wasm) with the decision cache OFF (every exchange evaluates the policy: the worst case, and the
shadow evaluates too), ES256 signing, as tests/harness.py wires them. Variants, interleaved round
after round so machine noise hits them alike:

  off       no observers: the exchange calls the live engine directly
  control   a second `off`: its distance from `off` is the noise floor of the run
  shadow    [policy.shadow] on the same folder (every decision shadowed, none differ), no
            shadow decision cache, default bounds (queue 1000, cpu_share 0.2, timeout 0.25 s)
  log       [decision_log] on (HMAC-hashed subject.email) to a temporary file

Two loads per variant and round:
  open      requests arrive at a fixed rate (a third of `off`'s wall-clock capacity, measured once
            at the start) for --seconds;
            latency = finish - scheduled arrival, so time spent waiting behind a shadow
            evaluation on the event loop counts
  closed    --concurrency tasks exchange back to back (yielding to the loop between calls,
            as a server does between requests) for --calls exchanges: saturation throughput in
            exchanges per CPU-second of this process (time.process_time, so other jobs on a
            shared machine do not count; the shadow's and the log writer's work does)

Then, robust to noise, the work the hot path itself gains: one decision through the observing
wrapper with its observer(s) against the bare engine call (minimum of repeated runs).

Usage: .venv/bin/python bench/shadow_cost.py [--rounds 5] [--seconds 1.5] [--calls 300]
"""

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sekisho.audit import AuditLog
from sekisho.clock import SystemClock
from sekisho.components import build_policy_engine
from sekisho.config import Settings
from sekisho.decision_observers import build_decision_log
from sekisho.exchange import TokenExchanger
from sekisho.identity.cache import CachingTokenVerifier
from sekisho.loops import LoopFailures, not_counted
from sekisho.minting.minter import TokenMinter
from sekisho.models import Decision
from sekisho.policy.decisionlog import DecisionEvents
from sekisho.policy.engine import PolicyEngine
from sekisho.policy.redaction import Redactor, build_hasher
from sekisho.policy.selftest import self_test_input
from sekisho.policy.shadow import ShadowEvaluator
from sekisho.policy.tap import ObservedDecision, ObservedPolicyEngine

from tests.bounds import request_limits, shadow_bounds
from tests.harness import POLICIES, SEKISHO_ISSUER, Harness, build_harness

Clock = Callable[[], float]
VARIANTS = ("off", "control", "shadow", "log")


class Variant:
    """One pipeline and whatever observes its decisions."""

    def __init__(self, harness: Harness, policy: PolicyEngine) -> None:
        clock = harness.clock
        verifier = CachingTokenVerifier(
            harness.verifier, harness.issuers, clock, max_entries=10000, max_seconds=300
        )
        minter = TokenMinter(
            harness.keyring, clock, issuer=SEKISHO_ISSUER, max_lifetime_seconds=300
        )
        self.exchanger = TokenExchanger(
            verifier, policy, minter, clock, AuditLog(), limits=request_limits()
        )
        self.shadow: ShadowEvaluator | None = None


async def _variants(harness: Harness, folder: Path) -> dict[str, Variant]:
    live = build_policy_engine(
        Settings(policy={"path": str(POLICIES)}), SystemClock(), LoopFailures(not_counted)
    )
    await live.start()
    variants = {name: Variant(harness, live) for name in ("off", "control")}
    shadow_engine = build_policy_engine(
        Settings(policy={"path": str(POLICIES)}), SystemClock(), LoopFailures(not_counted)
    )
    await shadow_engine.start()
    shadow = ShadowEvaluator(shadow_engine, shadow_bounds())
    shadow.start()
    variants["shadow"] = Variant(harness, ObservedPolicyEngine(live, harness.clock, [shadow]))
    variants["shadow"].shadow = shadow
    decision_log = build_decision_log(_log_settings(folder), None, several_workers=False)
    decision_log.start()
    variants["log"] = Variant(harness, ObservedPolicyEngine(live, harness.clock, [decision_log]))
    return variants


async def _open_loop(variant: Variant, request: object, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []

    async def one(scheduled: float) -> None:
        await variant.exchanger.exchange(request)  # type: ignore[arg-type]
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    start = time.perf_counter()
    for index in range(int(rate * seconds)):
        scheduled = start + index / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return latencies


async def _closed_loop(
    variant: Variant,
    request: object,
    calls: int,
    concurrency: int,
    clock: Clock = time.process_time,
) -> float:
    remaining = calls

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await variant.exchanger.exchange(request)  # type: ignore[arg-type]
            await asyncio.sleep(0)

    started = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls / (clock() - started)


def _shadowed(variant: Variant) -> int:
    if variant.shadow is None:
        return 0
    return sum(n for key, n in variant.shadow.counters.outcomes.items() if key != "dropped")


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(rounds: int, seconds: float, calls: int, concurrency: int) -> None:
    logging.disable(logging.WARNING)  # no per-exchange log lines: measure the observers alone
    with tempfile.TemporaryDirectory() as scratch:
        harness = build_harness(Path(scratch) / "keys")
        request = harness.request(harness.idp_a.token(harness.clock.now()))
        variants = await _variants(harness, Path(scratch))
        for variant in variants.values():  # warm up
            await _closed_loop(variant, request, 100, concurrency)
        capacity = await _closed_loop(
            variants["off"], request, calls, concurrency, clock=time.perf_counter
        )
        rate = capacity / 3
        print(f"capacity (off, closed loop, wall): {capacity:.0f}/s; open-loop rate: {rate:.0f}/s")
        p50: dict[str, list[float]] = {name: [] for name in VARIANTS}
        p99: dict[str, list[float]] = {name: [] for name in VARIANTS}
        throughput: dict[str, list[float]] = {name: [] for name in VARIANTS}
        in_loop: dict[str, list[int]] = {name: [] for name in VARIANTS}
        for _ in range(rounds):
            for name in VARIANTS:
                variant = variants[name]
                latencies = await _open_loop(variant, request, rate, seconds)
                p50[name].append(_quantile(latencies, 0.5) * 1e3)
                p99[name].append(_quantile(latencies, 0.99) * 1e3)
                if variant.shadow is not None:
                    await variant.shadow.drained()
                before = _shadowed(variant)
                throughput[name].append(await _closed_loop(variant, request, calls, concurrency))
                in_loop[name].append(_shadowed(variant) - before)
                if variant.shadow is not None:
                    await variant.shadow.drained()
        _report(p50, p99, throughput, variants["shadow"].shadow)
        print(f"shadowed while the closed loop ran, per round of {calls}: {in_loop['shadow']}")
        await _hot_path_cost(harness, Path(scratch))


class _Instant:
    """An engine that answers at once, so only the wrapper's own work is timed."""

    ready = True

    def __init__(self, decision: Decision) -> None:
        self._decision = decision

    async def decide(self, document: dict[str, Any]) -> Decision:
        return self._decision


async def _hot_path_cost(harness: Harness, folder: Path) -> None:
    """µs per decision the exchange itself spends on observing (wrapper + enqueue)."""
    document = self_test_input()
    bare = _Instant(Decision(allow=True, scopes=("crm.read",), decision_id="x"))
    shadow = ShadowEvaluator(bare, shadow_bounds(queue_size=10**6))  # not started: only enqueues
    decision_log = build_decision_log(_log_settings(folder), None, several_workers=False)
    wrapped = {
        "bare engine": bare,
        "+ shadow offer": ObservedPolicyEngine(bare, harness.clock, [shadow]),
        "+ decision log offer": ObservedPolicyEngine(bare, harness.clock, [decision_log]),
    }
    for name, engine in wrapped.items():
        best = min([await _timed(engine, document, 5000) for _ in range(7)])
        print(f"{name:<22}{best * 1e6:>8.2f} µs per decision")
    # What a live exchange can wait behind: one in-process shadow evaluation on the loop.
    shadow_engine = build_policy_engine(
        Settings(policy={"path": str(POLICIES)}), SystemClock(), LoopFailures(not_counted)
    )
    await shadow_engine.start()
    real_input = await _live_input(harness)
    times = [await _timed(shadow_engine, real_input, 1) * 1e3 for _ in range(2000)]
    print(
        f"one shadow evaluation (shipped policy): median {statistics.median(times):.3f} ms, "
        f"p99 {_quantile(times, 0.99):.3f} ms, max {max(times):.3f} ms"
    )
    _writer_cost(real_input, folder)


def _writer_cost(document: dict[str, Any], folder: Path) -> None:
    """CPU the decision log's writer thread spends per record (event, redaction, JSON)."""
    decision = Decision(allow=True, scopes=("crm.read",), claims={"email": "x"}, decision_id="x")
    observed = ObservedDecision(document, decision, None, 1.8e9, 1000)
    for fields in ((), ("subject.email",)):
        config = _log_settings(folder).decision_log.model_copy(update={"hash_fields": fields})
        hasher = build_hasher(config) if fields else None
        events = DecisionEvents("sekisho/exchange/decision", Redactor(hasher, fields, ()), {})
        best = min(
            timeit.repeat(
                lambda events=events: json.dumps(events.event(observed), separators=(",", ":")),
                number=2000,
                repeat=5,
            )
        )
        label = "hashing subject.email" if fields else "no redaction"
        print(f"decision log writer, {label}: {best / 2000 * 1e6:.1f} µs per record")


async def _live_input(harness: Harness) -> dict[str, Any]:
    """The input document the pipeline builds for the benchmark's request."""
    seen: list[dict[str, Any]] = []

    class Recorder:
        def offer(self, observed: Any) -> None:
            seen.append(observed.document)

    live = build_policy_engine(
        Settings(policy={"path": str(POLICIES)}), SystemClock(), LoopFailures(not_counted)
    )
    await live.start()
    variant = Variant(harness, ObservedPolicyEngine(live, harness.clock, [Recorder()]))
    await variant.exchanger.exchange(harness.request(harness.idp_a.token(harness.clock.now())))
    return seen[0]


async def _timed(engine: PolicyEngine, document: dict[str, Any], number: int) -> float:
    started = time.perf_counter()
    for _ in range(number):
        await engine.decide(document)
    return (time.perf_counter() - started) / number


def _log_settings(folder: Path) -> Settings:
    key = folder / "key"
    key.write_text("a-benchmark-key-of-32-bytes-long")
    return Settings(
        decision_log={"enabled": True, "path": str(folder / "d.jsonl"), "hash_key_file": str(key)}
    )


def _report(
    p50: dict[str, list[float]],
    p99: dict[str, list[float]],
    throughput: dict[str, list[float]],
    shadow: ShadowEvaluator | None,
) -> None:
    base = statistics.median(throughput["off"])
    print(f"{'variant':<9}{'open p50 ms':>12}{'open p99 ms':>12}{'closed exch/s':>15}{'vs off':>8}")
    for name in VARIANTS:
        rate = statistics.median(throughput[name])
        print(
            f"{name:<9}{statistics.median(p50[name]):>12.2f}{statistics.median(p99[name]):>12.2f}"
            f"{rate:>15.0f}{(rate - base) / base * 100:>7.1f}%"
        )
    if shadow is not None:
        print(f"shadow outcomes: {shadow.counters.outcomes}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.seconds, args.calls, args.concurrency))
