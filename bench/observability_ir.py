"""Deterministic cost of observability per warm exchange: callgrind instructions (Ir) of the
`token_exchanged` audit line and of the metric hooks, each alone, as the pipeline runs them.

The audit line goes through the handler `configure_logging` installs (INFO, JSON, to /dev/null),
with the request, verified subject and minted token of a bench exchange (distinct jti); the
hooks are one exchange scope and its three stages on real `Metrics`. Inputs are built directly
(no IdP, policy or signing: valgrind would spend its time compiling the policy). Each part runs
`--calls` times inside functools.reduce, so callgrind counts only it (one dump per part):

    valgrind --tool=callgrind --toggle-collect=functools_reduce --dump-after=functools_reduce \\
        --callgrind-out-file=/tmp/obs.%p .venv/bin/python bench/observability_ir.py [--calls 500]
    callgrind_annotate /tmp/obs.<pid>.1 | head   # part 1: audit line; .2: metric hooks

Run with PYTHONPATH=<checkout>/server to measure another checkout's code (base vs new).
Without valgrind it prints the parts' CPU time (min of 5) instead, which is only indicative.
"""

import argparse
import contextvars
import functools
import logging
import os
import secrets
import time
from collections.abc import Callable

from sekisho.audit import AuditLog
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.instruments import ExchangeInstruments
from sekisho.logs import configure_logging
from sekisho.metrics import Metrics
from sekisho.models import Caller, ExchangeRequest, MintedToken, VerifiedToken

CALLS = 500


def _under_marker(action: Callable[[], object]) -> None:
    """Run `action` inside functools.reduce: the C function callgrind toggles collection on."""
    functools.reduce(lambda _a, _b: action(), [0, 1])


def _exchange() -> tuple[ExchangeRequest, VerifiedToken, list[MintedToken]]:
    """What a warm exchange of the throughput bench hands the audit line (bench/stack.py: an
    RS256 IdP token for one of 1,000 users, one downstream audience and resource, ES256)."""
    caller = Caller(id="spiffe://example.org/agent", spiffe_id="spiffe://example.org/agent",
                    authenticated_by="mtls")  # fmt: skip
    request = ExchangeRequest(
        subject_token="eyJhbGciOiJSUzI1NiJ9.e30.c2ln",  # noqa: S106 (a placeholder)
        subject_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        requested_token_type=TOKEN_TYPE_ID_JAG,
        audience="https://as-0417.example.com",
        resources=("https://mcp-0417.example.com/mcp",),
        scopes=("svc-0417.read",),
        caller=caller,
    )
    subject = VerifiedToken(
        issuer="http://127.0.0.1:41234", subject="user-0042", token_type="access_token",  # noqa: S106
        expires_at=1_796_176_800,
    )  # fmt: skip
    minted = [
        MintedToken(
            token="never logged",  # noqa: S106
            jti=secrets.token_urlsafe(16),
            kid="PKy6oc_BelO77pcdKvSrIz_nudazP9bHGgR8mCyAl_0",
            issued_at=1_796_176_500,
            expires_at=1_796_176_800,
            issued_token_type=TOKEN_TYPE_ID_JAG,
            token_type="N_A",  # noqa: S106
            audience=request.audience,
            scopes=request.scopes,
            resources=request.resources,
        )
        for _ in range(CALLS)
    ]
    return request, subject, minted


def _parts() -> dict[str, Callable[[], object]]:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging("INFO", "json", request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 (one per run)
    request_id.set("7d3c0a5e1f8b4a529d0e2b6f1c9e8a41")
    request, subject, minted = _exchange()
    audit = AuditLog(request_id)
    instruments = ExchangeInstruments(Metrics(max_audiences=50))

    def audit_lines() -> None:
        for token in minted:
            audit.exchanged(request, subject, token, "0b9c2a6e-5d1f-4e8a-9c3b-7a2d1e0f4b6c")

    def hooks() -> None:
        for _ in range(CALLS):
            with instruments.exchange(request.audience, "grpc") as scope:
                for stage in ("verify", "policy", "sign"):
                    # (scope or instruments): the stages hung off the instruments before session 7
                    with (scope or instruments).stage(stage):
                        pass

    for part in (audit_lines, hooks):  # warm: caches, allocator, label children
        part()
    return {"audit line": audit_lines, "metric hooks": hooks}


def main(calls: int, timed: bool) -> None:
    parts = _parts()
    for name, part in parts.items():
        if timed:
            best = min(_cpu(part) for _ in range(5))
            print(f"{name:<14} {best / calls * 1e6:7.2f} us per exchange (CPU, min of 5)")
        else:
            _under_marker(part)
            print(f"under the marker: {name} x {calls}", flush=True)


def _cpu(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--timed", action="store_true", help="CPU time instead of the marker")
    args = parser.parse_args()
    CALLS = args.calls
    main(args.calls, args.timed)
