"""[grpc] acceptors (rpc/acceptors.py): calls the extra acceptors take from grpc core are served
like grpc.aio's own (admission gate, error mapping, audit), a stop ends them, and a grpcio
without the names they call leaves the server on grpc.aio's loop alone."""

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.devidp import DevIdentityProvider
from sekisho.rpc import acceptors as acceptors_module
from sekisho.rpc.handler_cache import HandlerCache
from sekisho.service import start_service
from sekisho.signing.filestore import FileKeyStore

from tests.integration.conftest import LiveStack, stack_settings

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"
CALLS = 64
# A hang guard on each call, not a bound: a call held by a dead acceptor still fails (it ends
# DEADLINE_EXCEEDED, not CANCELLED), only later. At 3 s, 32 or 64 exchanges at once could outlast
# it on a loaded host (scheduling stalls of seconds: bench/results/first_call.md).
CALL_TIMEOUT_SECONDS = 30


async def _exchange_all(stub: pb_grpc.TokenExchangeServiceStub, token: str) -> list[str]:
    request = pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS)
    responses = await asyncio.gather(*(stub.ExchangeToken(request) for _ in range(CALLS)))
    return [response.access_token for response in responses]


async def test_calls_taken_by_the_acceptors_are_served(live: LiveStack) -> None:
    """The default stack runs them: concurrent calls are taken by them and each gets a token."""
    acceptors = live.service.grpc.acceptors
    assert acceptors is not None
    tokens = await _exchange_all(live.stub, live.user_token())
    assert len(set(tokens)) == CALLS
    assert acceptors.accepted > 0


async def test_refusals_through_the_acceptors_keep_their_codes(live: LiveStack) -> None:
    """A call they take passes the same interceptors: a bad token is INVALID_ARGUMENT /
    UNAUTHENTICATED with the service's own message, not an internal error."""
    request = pb.ExchangeTokenRequest(subject_token="not-a-jwt", audience=CRM_AS)
    outcomes = await asyncio.gather(
        *(live.stub.ExchangeToken(request) for _ in range(CALLS)), return_exceptions=True
    )
    codes = {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)}
    assert len(codes) == 1 and codes <= {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
    }
    assert live.service.grpc.acceptors is not None
    assert live.service.grpc.acceptors.accepted > 0


async def test_they_run_the_handlers_grpc_aio_runs(
    live: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Calls alternate between grpc.aio's loop and the acceptors; the interceptors' wrapped
    handlers (cached per handler object) are built once, not again at every switch (red team
    session 14b: 24 % of calls rebuilt them when the acceptors ran other handler objects)."""
    token = live.user_token()
    await _exchange_all(live.stub, token)  # every wrap built once
    rebuilt: list[str] = []
    original = HandlerCache.wrapped

    def counting(self: HandlerCache, method: str, handler: Any, wrap: Any) -> Any:
        def recorded(name: str, given: Any) -> Any:
            rebuilt.append(name)
            return wrap(name, given)

        return original(self, method, handler, recorded)

    monkeypatch.setattr(HandlerCache, "wrapped", counting)
    accepted = live.service.grpc.acceptors.accepted if live.service.grpc.acceptors else 0
    await _exchange_all(live.stub, token)
    assert live.service.grpc.acceptors is not None
    assert live.service.grpc.acceptors.accepted > accepted  # some calls went through them
    assert rebuilt == []


class _HandoverFails:
    """cygrpc as a grpcio whose `_handle_rpc` takes other arguments would behave."""

    def __getattr__(self, name: str) -> Any:
        if name == "_handle_rpc":
            raise TypeError("_handle_rpc() takes exactly 7 positional arguments (6 given)")
        return getattr(cygrpc, name)


async def test_a_call_an_acceptor_cannot_hand_over_is_cancelled_not_held(
    live: LiveStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An acceptor that fails after taking a call from grpc core ends (logged), and the call it
    holds is cancelled at once; it used to stay in the dead task's traceback, unanswered until
    the caller's deadline (red team session 14b: 4 of 32 calls DEADLINE_EXCEEDED)."""
    monkeypatch.setattr(acceptors_module, "cygrpc", _HandoverFails())
    request = pb.ExchangeTokenRequest(subject_token=live.user_token(), audience=CRM_AS)
    outcomes = await asyncio.gather(
        *(live.stub.ExchangeToken(request, timeout=CALL_TIMEOUT_SECONDS) for _ in range(32)),
        return_exceptions=True,
    )
    codes = {o.code() for o in outcomes if isinstance(o, grpc.aio.AioRpcError)}
    assert codes == {grpc.StatusCode.CANCELLED}
    assert live.service.grpc.acceptors is not None
    exchange = [
        t for t in live.service.grpc.acceptors._acceptors if "ExchangeToken" in t.get_name()
    ]
    assert all(task.done() for task in exchange)  # ended; grpc.aio's own loop serves on
    assert (await live.stub.ExchangeToken(request, timeout=CALL_TIMEOUT_SECONDS)).access_token


async def test_an_acceptor_that_failed_is_not_restarted_and_costs_one_call(
    live: LiveStack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Decided in session 15 (acceptors.py `_log_crash`): what makes an acceptor fail recurs on
    every try, and a restart that fails after taking a call cancels that call too (restarts
    with a 0.25-1 s backoff: 26 of 240 calls cancelled in 5 s, on at ~4 a second). Without
    them each acceptor costs one call, its line says how many are left, and grpc.aio's own
    loop serves every later call."""
    monkeypatch.setattr(acceptors_module, "cygrpc", _HandoverFails())
    request = pb.ExchangeTokenRequest(subject_token=live.user_token(), audience=CRM_AS)
    with caplog.at_level(logging.ERROR, logger="sekisho.rpc.acceptors"):
        first = await asyncio.gather(
            *(live.stub.ExchangeToken(request, timeout=CALL_TIMEOUT_SECONDS) for _ in range(32)),
            return_exceptions=True,
        )
    cancelled = [o for o in first if isinstance(o, grpc.aio.AioRpcError)]
    assert {o.code() for o in cancelled} == {grpc.StatusCode.CANCELLED}
    assert live.service.grpc.acceptors is not None
    exchange = [
        t for t in live.service.grpc.acceptors._acceptors if "ExchangeToken" in t.get_name()
    ]
    assert len(cancelled) == len(exchange) == 4  # one each, all of them failed
    lines = [r for r in caplog.records if r.getMessage() == "grpc_acceptor_failed"]
    assert len(lines) == 4 and lines[-1].__dict__["left"] == 0  # grpc.aio's loop alone now
    await asyncio.sleep(1.0)  # a restart would be taking (and cancelling) calls again by now
    later = await asyncio.gather(
        *(live.stub.ExchangeToken(request, timeout=CALL_TIMEOUT_SECONDS) for _ in range(64)),
        return_exceptions=True,
    )
    assert not [o for o in later if isinstance(o, BaseException)]
    assert all(task.done() for task in exchange)


async def _service(tmp_path: Path, idp: DevIdentityProvider, acceptors: int):  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    return await start_service(stack_settings(idp.issuer, keys, grpc={"acceptors": acceptors}))


async def test_a_stop_ends_them(tmp_path: Path, dev_idp: DevIdentityProvider) -> None:
    service = await _service(tmp_path, dev_idp, 4)
    acceptors = service.grpc.acceptors
    assert acceptors is not None
    running = list(acceptors._acceptors)  # 4 for ExchangeToken, 4 for Envoy's Check
    assert len(running) == 8 and not any(task.done() for task in running)
    await asyncio.wait_for(service.stop(0.5), 10)
    assert all(task.done() for task in running)


async def test_zero_means_grpc_aio_alone(tmp_path: Path, dev_idp: DevIdentityProvider) -> None:
    service = await _service(tmp_path, dev_idp, 0)
    try:
        assert service.grpc.acceptors is None
    finally:
        await service.stop(0.5)


async def test_a_grpcio_without_their_names_serves_without_them(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # As if a later grpcio renamed one of them (deleting a real one breaks grpc.aio's loop too).
    monkeypatch.setattr(
        acceptors_module, "_CYGRPC_NAMES", (*acceptors_module._CYGRPC_NAMES, "_renamed")
    )
    with caplog.at_level(logging.WARNING, logger="sekisho.rpc.acceptors"):
        service = await _service(tmp_path, dev_idp, 4)
    try:
        assert service.grpc.acceptors is None
        (record,) = [r for r in caplog.records if r.getMessage() == "grpc_acceptors_unavailable"]
        assert record.__dict__["missing"] == ["_renamed"]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel:
            stub = pb_grpc.TokenExchangeServiceStub(channel)
            assert (await stub.GetJwks(pb.GetJwksRequest(), timeout=10)).jwks
    finally:
        await service.stop(0.5)
