"""Isolated per-call costs behind "hot path, part 3" (exchange_throughput_session4.md).

Times, as the minimum of repeated runs (robust to a shared machine's interference):

  audit_same    one `token_exchanged` line through the configured JSON handler to /dev/null,
                the same record every call (as bench/observability_cost.py times it)
  audit_fresh   the same line with what differs per exchange in a real server: a new jti per
                minted token and a new request id per RPC (20,000 distinct values, cycled)
  scrub_fresh   ScrubFilter.filter alone on such a record (the scrubber's share of the line)

Usage: .venv/bin/python bench/hotpath3_isolated.py [REPO]   (REPO: the checkout to time, default
this one; an older checkout is timed with the same interpreter by putting its server/ and root
first on sys.path, so two trees can be timed side by side, alternating).
"""

import asyncio
import contextvars
import dataclasses
import logging
import os
import secrets
import sys
import tempfile
import timeit
import uuid
from collections.abc import Callable
from itertools import cycle
from pathlib import Path

REPO = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
sys.path[:0] = [str(REPO / "server"), str(REPO)]

from sekisho.audit import AuditLog  # noqa: E402
from sekisho.logs import configure_logging  # noqa: E402
from sekisho.redaction import ScrubFilter  # noqa: E402

from tests.harness import build_harness  # noqa: E402

DISTINCT = 20000


def _best_of(action: Callable[[], object], repeat: int = 9, number: int = DISTINCT) -> float:
    """Microseconds per call: the minimum over `repeat` runs of `number` calls."""
    return min(timeit.repeat(action, repeat=repeat, number=number)) / number * 1e6


async def main() -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging("INFO", "json", request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230
    scrubber = next(f for f in handler.filters if isinstance(f, ScrubFilter))
    with tempfile.TemporaryDirectory() as keys:
        harness = build_harness(Path(keys))
        token = harness.idp_a.token(harness.clock.now())
        request = harness.request(token)
        subject = await harness.verifier.verify(token, request.subject_token_type)
        minted = (await harness.exchanger.exchange(request)).minted
    audit = AuditLog(request_id)
    fresh = cycle(
        [
            (dataclasses.replace(minted, jti=secrets.token_urlsafe(16)), uuid.uuid4().hex)
            for _ in range(DISTINCT)
        ]
    )

    def audit_fresh() -> None:
        one, rid = next(fresh)
        request_id.set(rid)
        audit.exchanged(request, subject, one, "decision-id")

    records: list[logging.LogRecord] = []
    capture = logging.Handler()
    capture.emit = records.append  # type: ignore[method-assign]
    handler.filters, saved = [], handler.filters
    logging.getLogger().addHandler(capture)
    for _ in range(DISTINCT):
        audit_fresh()
    logging.getLogger().removeHandler(capture)
    handler.filters = saved
    pending = cycle(records)

    def scrub_fresh() -> None:
        record = next(pending)
        saved_dict = dict(record.__dict__)
        scrubber.filter(record)
        record.__dict__ = saved_dict

    copy_only = cycle(records)

    def copy_fresh() -> None:
        record = next(copy_only)
        record.__dict__ = dict(record.__dict__)

    print(f"audit_same  {_best_of(lambda: audit.exchanged(request, subject, minted, 'd')):6.2f} µs")
    print(f"audit_fresh {_best_of(audit_fresh):6.2f} µs")
    print(f"scrub_fresh {_best_of(scrub_fresh) - _best_of(copy_fresh):6.2f} µs")


if __name__ == "__main__":
    asyncio.run(main())
