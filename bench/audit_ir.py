"""Deterministic cost of the `token_exchanged` audit line as a served warm exchange meets it:
callgrind instructions (Ir) per line, with what varies per line varying as in `make bench`'s warm
run (bench/stack.py: 1,000 users x 3 audiences, each exchange a cached decision).

Per line: a fresh request id (uuid4 hex, as the gRPC interceptor makes one), a fresh jti and
`exp`; the decision id one of 3,000 (one per cached decision: user x audience), the subject one
of 1,000 users, the audience, granted scope and resource one of the user's 3 of 1,000
downstreams; no requested scope (the bench's messages name none). Every
string is a fresh object per line (as parsed from each request), not the same object again.
`--warm` lines first (the remembered texts reach their steady state), then `--calls` lines
inside functools.reduce, which callgrind toggles collection on:

    valgrind --tool=callgrind --toggle-collect=functools_reduce --dump-after=functools_reduce \\
        --callgrind-out-file=/tmp/audit.%p .venv/bin/python bench/audit_ir.py [--calls 500]
    grep summary /tmp/audit.<pid>.1        # / calls = Ir per line

The handler writes to /dev/null (a write's kernel time is not counted by callgrind anyway).
Run with PYTHONPATH=<checkout>/server to measure another checkout's code (base vs new).
`--timed`: CPU time per line instead (min of 5), only indicative on a shared machine.
"""

import argparse
import asyncio
import contextvars
import functools
import logging
import os
import random
import secrets
import time
import uuid
from collections.abc import Callable

from sekisho.audit import AuditLog
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.logs import configure_logging
from sekisho.models import Caller, ExchangeRequest, MintedToken, VerifiedToken

USERS, DOWNSTREAMS, AUDIENCES_PER_USER = 1000, 1000, 3
ISSUER = "http://127.0.0.1:41234"
KID = "PKy6oc_BelO77pcdKvSrIz_nudazP9bHGgR8mCyAl_0"


def _fresh(text: str) -> str:
    """An equal string that is another object (what parsing each request gives)."""
    return (text + ".")[:-1]


def _lines(
    count: int, rng: random.Random
) -> list[tuple[str, ExchangeRequest, VerifiedToken, MintedToken, str]]:
    caller = Caller()  # the bench registers no caller: id, SPIFFE ID and method are empty
    lines = []
    for _ in range(count):
        user = rng.randrange(USERS)
        downstream = (user * 7 + rng.randrange(AUDIENCES_PER_USER) * 331) % DOWNSTREAMS
        audience = _fresh(f"https://as-{downstream:04d}.example.com")
        scopes = (_fresh(f"svc-{downstream:04d}.read"),)
        resources = (_fresh(f"https://mcp-{downstream:04d}.example.com/mcp"),)
        request = ExchangeRequest(
            subject_token="never logged", subject_token_type=TOKEN_TYPE_ACCESS_TOKEN,  # noqa: S106
            requested_token_type=_fresh(TOKEN_TYPE_ID_JAG), audience=audience,
            resources=(), scopes=(), caller=caller,
        )  # fmt: skip
        subject = VerifiedToken(
            issuer=_fresh(ISSUER), subject=f"user{user}", token_type="access_token",  # noqa: S106
            expires_at=1_796_190_000,
        )  # fmt: skip
        now = 1_796_176_500 + len(lines) // 1500
        minted = MintedToken(
            token="never logged", jti=secrets.token_urlsafe(16), kid=KID,  # noqa: S106
            issued_at=now, expires_at=now + 300, issued_token_type=TOKEN_TYPE_ID_JAG,
            token_type="N_A", audience=audience, scopes=scopes, resources=resources,  # noqa: S106
        )  # fmt: skip
        decision = str(uuid.UUID(int=user * DOWNSTREAMS + downstream))
        lines.append((uuid.uuid4().hex, request, subject, minted, decision))
    return lines


def _writer(calls: int, warm: int) -> tuple[Callable[[], None], Callable[[], None]]:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging("INFO", "json", request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (one per run)
    audit = AuditLog(request_id)
    rng = random.Random(15)  # noqa: S311 (reproducible)
    warmup, measured = _lines(warm, rng), _lines(calls, rng)

    def run(lines: list[tuple[str, ExchangeRequest, VerifiedToken, MintedToken, str]]) -> None:
        for rid, request, subject, minted, decision in lines:
            request_id.set(rid)
            audit.exchanged(request, subject, minted, decision)

    return functools.partial(run, warmup), functools.partial(run, measured)


async def _in_loop(action: Callable[[], object]) -> None:
    action()
    await asyncio.sleep(0)  # a deferred write (if any) happens in this loop iteration


def main(calls: int, warm: int, timed: bool) -> None:
    warmup, measured = _writer(calls, warm)
    asyncio.run(_in_loop(warmup))
    if timed:
        best = min(_cpu(lambda: asyncio.run(_in_loop(measured))) for _ in range(5))
        print(f"audit line {best / calls * 1e6:7.2f} us per line (CPU, min of 5)")
        return
    asyncio.run(_in_loop(lambda: functools.reduce(lambda _a, _b: measured(), [0, 1])))
    print(f"under the marker: audit line x {calls}", flush=True)


def _cpu(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--warm", type=int, default=6000)
    parser.add_argument("--timed", action="store_true", help="CPU time instead of the marker")
    args = parser.parse_args()
    main(args.calls, args.warm, args.timed)
