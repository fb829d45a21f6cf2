"""Instructions (callgrind Ir, deterministic) of one all-miss ExchangeToken in process and of
each step of it, for the checkout on PYTHONPATH (issue 12: CPU per miss).

The service is started in process as bench/hotpath5_probe.py starts it (the exchange bench's
config with both caches off: every call verifies the RS256 subject token and its claims,
evaluates the policy, signs ES256 and self-verifies). After `--warmup` unmarked calls, each
piece runs once per message inside functools.reduce, so

    cd bench && PYTHONPATH=CHECKOUT/server PATH=../bin:$PATH valgrind --tool=callgrind \\
        --toggle-collect=functools_reduce --dump-after=functools_reduce \\
        --callgrind-out-file=/tmp/miss.%p ../.venv/bin/python miss_ir.py [--calls 100]
    python3 miss_ir.py --report /tmp/miss.PID [--base /tmp/miss.BASEPID] [--calls 100]

writes one dump per piece (in the order printed) and `--report` divides each dump's total by
the number of calls (with `--base`, side by side with another checkout's dumps). The pieces run
on the objects the service built, on inputs prepared from the same messages: the steps of the
whole exchange, then the parts of verify, decide and mint. Run the base from a worktree of the
base revision (the tool imports `stack` and the probe from the bench/ it sits in).
"""

import argparse
import asyncio
import contextvars
import functools
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hotpath5_probe as probe
import stack

PIECES = (
    "exchange (interceptor+servicer)",
    "exchange, the caller's x-request-id",
    "servicer.ExchangeToken",
    "TokenExchanger.exchange",
    "params_of + build_request",
    "verify",
    "  parse_compact",
    "  signature (RS256)",
    "  claim rules (_validated)",
    "build_input",
    "decide",
    "  encode input",
    "  evaluate (Wasm + result)",
    "  parse_decision",
    "granted",
    "mint",
    "  claims (build_claims)",
    "  sign (ES256)",
    "  self-verify (ES256)",
    "audit line",
    "response_of",
)


def _marked(action: Callable[[], Any]) -> None:
    functools.reduce(lambda _a, _b: action(), [0, 1])


async def _pieces(servicer: Any, wrapped: Any, requests: list[Any]) -> dict[str, Any]:
    from sekisho.jose import parse_compact
    from sekisho.minting.claims import build_claims
    from sekisho.models import Caller
    from sekisho.policy.decision import parse_decision
    from sekisho.policy.input import build_input
    from sekisho.policy.outcome import granted
    from sekisho.policy.wasm.policy import encode_json
    from sekisho.rpc import servicer as servicer_module
    from sekisho.validation import build_request

    run = probe._run_sync
    exchanger = servicer._exchanger
    verifier = exchanger._verifier
    inner = getattr(verifier, "_verifier", verifier)  # the subject cache wraps the verifier
    engine = exchanger._policy
    engine = getattr(engine, "_engine", engine)  # the decision cache wraps the engine
    minter, audit, clock = exchanger._minter, exchanger._audit, exchanger._clock
    encoder = minter._encoder
    caller = Caller()
    built = [
        build_request(servicer_module.params_of(r, exchanger._limits), caller, exchanger._limits)
        for r in requests
    ]
    subjects = [await verifier.verify(b.subject_token, b.subject_token_type) for b in built]
    jwss = [parse_compact(b.subject_token) for b in built]
    keys = [await inner._key_for(inner._issuer_of(j.claims), j.header) for j in jwss]
    issuers = [inner._issuer_of(j.claims).config for j in jwss]
    documents = [build_input(b, s, None, clock.now()) for b, s in zip(built, subjects, strict=True)]
    encoded = [encode_json(d) for d in documents]
    policy = engine.policy
    raws = [policy.evaluate(e) for e in encoded]
    decisions = [await exchanger._policy.decide(d) for d in documents]
    grants = [granted(d, b) for d, b in zip(decisions, built, strict=True)]
    minted = [
        await minter.mint(b, s, None, g) for b, s, g in zip(built, subjects, grants, strict=True)
    ]
    record, signer = minter._keyring.signing_key()
    claims = [
        build_claims(_facts(minter, b, s, g), s)
        for b, s, g in zip(built, subjects, grants, strict=True)
    ]
    header = encoder._header(signer.alg, signer.kid, "at+jwt")
    inputs = [header + b"." + b"x" * 600 for _ in built]
    signatures = [signer.sign_now(i) for i in inputs]
    from sekisho.models import ExchangeResult

    results = [ExchangeResult(minted=m, expires_in=300, decision_id="d") for m in minted]
    token_type = built[0].subject_token_type
    every = list(zip(built, subjects, grants, minted, strict=True))
    return {
        "exchange (interceptor+servicer)": lambda: [
            run(wrapped(r, probe.FakeContext())) for r in requests
        ],
        "exchange, the caller's x-request-id": lambda: [
            run(wrapped(r, _CallerIdContext())) for r in requests
        ],
        "servicer.ExchangeToken": lambda: [
            run(servicer.ExchangeToken(r, probe.FakeContext())) for r in requests
        ],
        "TokenExchanger.exchange": lambda: [
            run(exchanger.exchange(b, time_budget=3600.0, flow="ipv4:127.0.0.1:40000"))
            for b in built
        ],
        "params_of + build_request": lambda: [
            build_request(
                servicer_module.params_of(r, exchanger._limits), caller, exchanger._limits
            )
            for r in requests
        ],
        "verify": lambda: [run(verifier.verify(b.subject_token, token_type)) for b in built],
        "  parse_compact": lambda: [parse_compact(b.subject_token) for b in built],
        "  signature (RS256)": lambda: [
            inner._check_signature(j, k) for j, k in zip(jwss, keys, strict=True)
        ],
        "  claim rules (_validated)": lambda: [
            _validated(inner, j, c, token_type) for j, c in zip(jwss, issuers, strict=True)
        ],
        "build_input": lambda: [
            build_input(b, s, None, clock.now()) for b, s in zip(built, subjects, strict=True)
        ],
        "decide": lambda: [run(exchanger._policy.decide(d)) for d in documents],
        "  encode input": lambda: [encode_json(d) for d in documents],
        "  evaluate (Wasm + result)": lambda: [policy.evaluate(e) for e in encoded],
        "  parse_decision": lambda: [parse_decision(r, "d") for r in raws],
        "granted": lambda: [granted(d, b) for d, b in zip(decisions, built, strict=True)],
        "mint": lambda: [run(minter.mint(b, s, None, g)) for b, s, g, _m in every],
        "  claims (build_claims)": lambda: [
            build_claims(_facts(minter, b, s, g), s) for b, s, g, _m in every
        ],
        "  sign (ES256)": lambda: [signer.sign_now(i) for i in inputs],
        "  self-verify (ES256)": lambda: [
            encoder._self_verify(i, s, signer) for i, s in zip(inputs, signatures, strict=True)
        ],
        "audit line": lambda: [audit.exchanged(b, s, m, "d", reason="") for b, s, _g, m in every],
        "response_of": lambda: [servicer_module.response_of(r) for r in results],
        "_unused": (record, claims),
    }


class _CallerIdContext(probe.FakeContext):
    """A call that brings its own request id (the same on every call)."""

    def invocation_metadata(self) -> Any:
        return (("x-request-id", "0f3e2d1c4b5a69788796a5b4c3d2e1f0"),)


def _validated(verifier: Any, jws: Any, config: Any, token_type: str) -> Any:
    """TokenVerifier._validated of either revision (it took the parts before session 9)."""
    try:
        return verifier._validated(jws, config, token_type)
    except TypeError:
        return verifier._validated(jws.header, jws.claims, config, token_type)


def _facts(minter: Any, request: Any, subject: Any, decision: Any) -> Any:
    from sekisho.delegation import actor_chain
    from sekisho.minting.claims import TokenFacts

    return TokenFacts(
        issuer=minter._issuer,
        profile=request.requested_token_type,
        audience=request.audience,
        resources=decision.resources,
        scopes=decision.scopes,
        client_id=minter._client_id(request, subject, decision),
        jti="j" * 22,
        issued_at=1,
        expires_at=2,
        act=actor_chain(request.caller, None, subject.act),
        extra=dict(decision.claims),
        status=None,
    )


async def _drive(config: Path, messages: list[dict[str, Any]], calls: int, warmup: int) -> None:
    from sekisho import service as service_module
    from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
    from sekisho.config import load_settings
    from sekisho.logs import configure_logging
    from sekisho.rpc.interceptors import ErrorMappingInterceptor
    from sekisho.rpc.servicer import TokenExchangeServicer

    captured: list[TokenExchangeServicer] = []
    original = TokenExchangeServicer.__init__

    def capture(self: TokenExchangeServicer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        captured.append(self)

    TokenExchangeServicer.__init__ = capture  # type: ignore[method-assign]
    os.chdir(config.parent)
    settings = load_settings(config)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 - one per run
    service = await service_module.start_service(settings, request_id=request_id)
    try:
        wrapped = ErrorMappingInterceptor(request_id)._wrap(captured[0].ExchangeToken)
        requests = [pb.ExchangeTokenRequest(**m) for m in messages]
        # Over the measured messages only (twice by default): the audit line's encoder remembers
        # a field's text the second time it meets it, so the first piece would otherwise pay
        # that one-time work for every field the warm-up met once.
        for n in range(warmup):
            await wrapped(requests[n % calls], probe.FakeContext())
        pieces = await _pieces(captured[0], wrapped, requests[:calls])
        for name in PIECES:
            _marked(pieces[name])
            print(f"  under the marker: {name}", flush=True)
    finally:
        await service.stop(0.1)
        TokenExchangeServicer.__init__ = original  # type: ignore[method-assign]


def measure(calls: int, warmup: int) -> None:
    from sekisho.eventloop import install as install_event_loop

    install_event_loop("uvloop")
    with tempfile.TemporaryDirectory(prefix="sekisho-miss-ir-") as tmp:
        root = Path(tmp)
        idp = stack.Idp()
        try:
            load = stack.workload()
            messages = stack.exchange_messages(idp, load)
            stack.policy_folder(root, load)
            config = stack.write_config(root, idp, stack.Settings(workers=1, caches=False))
            stack.subprocess.run(
                [stack.SEKISHO, "keys", "init", "--config", config], check=True, cwd=root
            )
            asyncio.run(_drive(config, messages, calls, warmup))
        finally:
            idp.close()


def _totals(prefix: str) -> list[int]:
    totals = []
    for n in range(1, len(PIECES) + 1):
        for line in Path(f"{prefix}.{n}").read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                totals.append(int(line.split()[1]))
                break
    return totals


def report(prefix: str, base: str, calls: int) -> None:
    new = _totals(prefix)
    old = _totals(base) if base else None
    print(f"{'Ir per call':<34}" + (f"{'base':>11}{'new':>11}{'change':>10}" if old else "Ir"))
    for n, name in enumerate(PIECES):
        if old is None:
            print(f"{name:<34}{new[n] / calls:>11,.0f}")
            continue
        a, b = old[n] / calls, new[n] / calls
        print(f"{name:<34}{a:>11,.0f}{b:>11,.0f}{b - a:>+10,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--report", default="", help="callgrind output prefix to report")
    parser.add_argument("--base", default="", help="a base run's output prefix to compare")
    arguments = parser.parse_args()
    if arguments.report:
        report(arguments.report, arguments.base, arguments.calls)
    else:
        measure(arguments.calls, arguments.warmup)
