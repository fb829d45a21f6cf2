"""What metrics and logging cost the exchange pipeline (issue 6: at most 5 % of throughput).

In process, no network: the real verifier, embedded (OPA Wasm) policy and ES256 signing from
tests/harness.py, behind the hot-path caches as `start_service` wires them (a repeated token hits
the subject and decision caches, so the pipeline is as cheap as it gets and the relative overhead
is largest).
Four variants run interleaved, round after round, so machine noise hits them alike:

  bare       metrics off ([metrics] enabled = false), logging at WARNING (no per-exchange line)
  metrics    metrics on, logging at WARNING
  logging    metrics off, JSON logging at INFO (the audit line of every exchange) to /dev/null
  both       metrics on and JSON logging at INFO — the default configuration
  control    a second `bare`: its distance from `bare` is the noise floor of the run

Throughput is exchanges per CPU-second of this process (time.process_time), not per wall-clock
second: on a shared machine other processes' load would otherwise swamp a few-percent effect.
One process, one thread, so this is exchanges/s per core.

The A/B difference of a few µs per exchange is at the edge of what a shared 2-core machine can
resolve, so the script also times the added work in isolation, as the minimum of repeated runs
(robust to interference): the instrument hooks of one exchange (the exchange scope and its three
stages, with real prometheus-client metrics) and one audit log line through the JSON formatter.

Usage: .venv/bin/python bench/observability_cost.py [--rounds 7] [--calls 2000]
Prints exchanges per CPU-second per variant (median and best of rounds), the cost relative to
`bare`, and the isolated per-exchange costs as a fraction of the best `bare` exchange.
"""

import argparse
import asyncio
import contextvars
import logging
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sekisho.audit import AuditLog
from sekisho.exchange import TokenExchanger
from sekisho.identity.cache import CachingTokenVerifier
from sekisho.instruments import ExchangeInstruments
from sekisho.logs import configure_logging
from sekisho.metrics import Metrics
from sekisho.minting.minter import TokenMinter
from sekisho.policy.cache import CachingPolicyEngine

from tests.bounds import request_limits
from tests.harness import SEKISHO_ISSUER, Harness, build_harness

VARIANTS = {"bare": (False, "WARNING"), "control": (False, "WARNING")}
VARIANTS |= {"metrics": (True, "WARNING"), "logging": (False, "INFO"), "both": (True, "INFO")}


def _exchanger(harness: Harness, metrics: bool) -> TokenExchanger:
    clock = harness.clock
    verifier = CachingTokenVerifier(
        harness.verifier, harness.issuers, clock, max_entries=10000, max_seconds=300
    )
    policy = CachingPolicyEngine(harness.policy, clock, max_entries=10000)
    minter = TokenMinter(harness.keyring, clock, issuer=SEKISHO_ISSUER, max_lifetime_seconds=300)
    instruments = ExchangeInstruments(Metrics(max_audiences=50) if metrics else None)
    return TokenExchanger(
        verifier,
        policy,
        minter,
        clock,
        AuditLog(),
        instruments=instruments,
        limits=request_limits(),
    )


async def _round(exchanger: TokenExchanger, harness: Harness, token: str, calls: int) -> float:
    request = harness.request(token)
    started = time.process_time()
    for _ in range(calls):
        await exchanger.exchange(request)
    return calls / (time.process_time() - started)


async def main(rounds: int, calls: int) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging("INFO", "json", request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 (set up once, before any round)
    with tempfile.TemporaryDirectory() as keys:
        harness = build_harness(Path(keys))
        token = harness.idp_a.token(harness.clock.now())
        exchangers = {name: _exchanger(harness, on) for name, (on, _) in VARIANTS.items()}
        results: dict[str, list[float]] = {name: [] for name in VARIANTS}
        for name, exchanger in exchangers.items():  # warm caches, JIT-free but allocator-warm
            logging.getLogger().setLevel(VARIANTS[name][1])
            await _round(exchanger, harness, token, 200)
        for _ in range(rounds):
            for name, exchanger in exchangers.items():
                logging.getLogger().setLevel(VARIANTS[name][1])
                results[name].append(await _round(exchanger, harness, token, calls))
        audit = await _isolated_audit_line(harness, token)
    bare, best = statistics.median(results["bare"]), max(results["bare"])
    print(f"{'variant':<10}{'median':>10}{'vs bare':>9}{'best':>10}{'vs bare':>9}   exch/CPU-s")
    for name, values in results.items():
        median, top = statistics.median(values), max(values)
        cost, top_cost = (bare - median) / bare * 100, (best - top) / best * 100
        print(f"{name:<10}{median:>10.0f}{cost:>8.1f}%{top:>10.0f}{top_cost:>8.1f}%")
    per_exchange = 1e6 / best
    hooks = _isolated_hooks()
    print(f"\nbest bare exchange: {per_exchange:.1f} µs")
    print(f"metric hooks per exchange: {hooks:.2f} µs = {hooks / per_exchange * 100:.1f} %")
    print(f"audit log line (JSON): {audit:.2f} µs = {audit / per_exchange * 100:.1f} %")


def _best_of(action: Callable[[], object], repeat: int = 9, number: int = 20000) -> float:
    """Microseconds per call: the minimum over `repeat` runs of `number` calls."""
    return min(timeit.repeat(action, repeat=repeat, number=number)) / number * 1e6


def _isolated_hooks() -> float:
    instruments = ExchangeInstruments(Metrics(max_audiences=50))

    def one_exchange() -> None:
        with instruments.exchange("https://crm-as.example.com", "grpc") as scope:
            for stage in ("verify", "policy", "sign"):
                # (scope or instruments): the stages hung off the instruments before session 7
                with (scope or instruments).stage(stage):
                    pass

    return _best_of(one_exchange)


async def _isolated_audit_line(harness: Harness, token: str) -> float:
    """One `token_exchanged` line, as the pipeline writes it, through the configured handler."""
    logging.getLogger().setLevel("INFO")
    request = harness.request(token)
    subject = await harness.verifier.verify(token, request.subject_token_type)
    minted = (await _exchanger(harness, False).exchange(request)).minted
    audit = AuditLog()
    return _best_of(lambda: audit.exchanged(request, subject, minted, "decision-id"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.calls))
