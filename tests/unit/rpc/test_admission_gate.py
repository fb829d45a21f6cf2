"""The overload screen at the gRPC boundary (issue 14, session 5): a call the worker cannot serve
in time is refused as it arrives, with the contract's status, before its request is decoded or
the service sees it; refusals are logged at most once per interval."""

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from sekisho.errors import SlowDownError
from sekisho.rpc.admission_gate import AdmissionGate, ShedLog
from sekisho.rpc.interceptors import ErrorMappingInterceptor

from tests.fakes.clock import FakeClock
from tests.grpc_errors import error_info

METHOD = "/test.Gate/Exchange"


class Recorder:
    """A screen refusing while `refusing`, and a method counting what reached it."""

    def __init__(self) -> None:
        self.refusing = False
        self.undecodable = False
        self.screened: list[tuple[str, float | None]] = []
        self.decoded = 0
        self.served = 0

    def screen(self, flow: str, time_budget: float | None) -> None:
        self.screened.append((flow, time_budget))
        if self.refusing:
            raise SlowDownError("the server is busy; retry shortly", metadata={"retry_after": "3"})

    def decode(self, data: bytes) -> bytes:
        self.decoded += 1
        if self.undecodable:
            raise DecodeError("Wire format was corrupt")
        return data

    async def behaviour(self, request: bytes, context: Any) -> bytes:
        self.served += 1
        return request

    async def watch(self, request: bytes, context: Any) -> AsyncIterator[bytes]:
        """A server-streaming method that yields its answers."""
        self.served += 1
        yield request
        yield request

    async def watch_writing(self, request: bytes, context: Any) -> None:
        """A server-streaming method that writes its answers (grpc_health's Watch does)."""
        self.served += 1
        await context.write(request)
        await context.write(request)


def _handlers(recorder: Recorder) -> dict[str, grpc.RpcMethodHandler]:
    unary = {
        name: grpc.unary_unary_rpc_method_handler(
            recorder.behaviour, request_deserializer=recorder.decode
        )
        for name in ("Exchange", "Other")
    }
    streaming = {
        name: grpc.unary_stream_rpc_method_handler(behaviour, request_deserializer=recorder.decode)
        for name, behaviour in (("Watch", recorder.watch), ("WatchWriting", recorder.watch_writing))
    }
    return unary | streaming


async def _call(
    recorder: Recorder,
    clock: FakeClock,
    method: str = METHOD,
    *,
    requests: AsyncIterator[bytes] | None = None,
    give_up: float | None = 30,
    max_request_bytes: int = 1024,
    message_timeout: float = 30,
) -> Any:
    """One call of `method` with the request b"req", or with the messages `requests` yields (a
    client that streams, to control when, or whether, the request message is sent); a
    server-streaming method's answers as a list."""
    handler = grpc.method_handlers_generic_handler("test.Gate", _handlers(recorder))
    gate = AdmissionGate(
        recorder.screen,
        frozenset({METHOD}),
        ShedLog(clock),
        max_request_bytes,
        message_timeout=message_timeout,
    )
    server = grpc.aio.server(
        interceptors=[gate, ErrorMappingInterceptor(contextvars.ContextVar("request_id"))]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            metadata = (("x-request-id", "rid-9"),)
            try:
                if method.rpartition("/")[2].startswith("Watch"):
                    stream = channel.stream_stream(method)(
                        requests or _once(), timeout=give_up, metadata=metadata
                    )
                    return [answer async for answer in stream]
                if requests is not None:
                    return await channel.stream_unary(method)(
                        requests, timeout=give_up, metadata=metadata
                    )
                return await channel.unary_unary(method)(b"req", timeout=give_up, metadata=metadata)
            except grpc.aio.AioRpcError as error:
                return error
    finally:
        if isinstance(requests, _NeverSent):
            requests.close()  # grpc's task reading it ends now, not pending for good
        await server.stop(0)


async def test_a_screened_refusal_is_slow_down_and_never_decoded_or_served() -> None:
    recorder = Recorder()
    recorder.refusing = True
    failure = await _call(recorder, FakeClock())
    assert isinstance(failure, grpc.aio.AioRpcError)
    assert failure.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info = error_info(failure)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "slow_down",
        "sekisho.dev",
        {"retry_after": "3", "request_id": "rid-9"},
    )
    assert (recorder.decoded, recorder.served) == (0, 0)


class _NeverSent:
    """A client that opens the call and never sends its request message. An iterator class, not
    an async generator: grpc abandons the pending `__anext__` when the call ends, and on Python
    3.11 an async generator abandoned mid-`asend` is left "running", so its finalizer's aclose()
    logs an asyncio ERROR later, in whichever test is running then.

    `_call` ends it once the call is over (`close`): grpc cancels the task that reads the
    requests only when the client cancels the call, not when the server ends it, so the task
    waited here for good. Unreachable once the channel was gone, it was collected pending at
    some later full collection, and asyncio logged "Task was destroyed but it is pending!" (an
    ERROR) inside whichever test ran then: one asserting its exact caplog records failed."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    def __aiter__(self) -> "_NeverSent":
        return self

    async def __anext__(self) -> bytes:
        await self._closed.wait()
        raise StopAsyncIteration

    def close(self) -> None:
        self._closed.set()


async def test_a_screened_refusal_does_not_wait_for_the_request_message() -> None:
    """Session 7: the gate refuses before grpc has received the request (stream-unary kind), so a
    refusal does not pay for receiving a message it never reads. Served as grpc's unary kind, the
    call waits for a message that never comes and ends at the client's deadline instead."""
    recorder = Recorder()
    recorder.refusing = True
    failure = await _call(recorder, FakeClock(), requests=_NeverSent(), give_up=10)
    assert isinstance(failure, grpc.aio.AioRpcError)
    assert failure.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(failure).reason == "slow_down"


async def _once() -> AsyncIterator[bytes]:
    yield b"req"


@pytest.mark.parametrize(
    "method",
    [METHOD, "/test.Gate/Other", "/test.Gate/Watch", "/test.Gate/WatchWriting"],
    ids=["screened", "unary", "server-streaming", "server-streaming-writing"],
)
async def test_a_call_whose_message_never_arrives_is_refused_after_the_message_timeout(
    method: str,
) -> None:
    """Red team session 19: grpc waits for a call's request message until the client's deadline,
    and a client may set none: opened and never sent, the call stayed open for good (16 per
    connection, connections unbounded per peer). Now it is refused once the message timeout has
    passed, whatever the method, with no deadline from the client at all."""
    recorder = Recorder()
    started = asyncio.get_running_loop().time()
    failure = await asyncio.wait_for(
        _call(
            recorder, FakeClock(), method, requests=_NeverSent(), give_up=None, message_timeout=0.3
        ),
        30,  # a hang guard: without the bound the call never ends
    )
    assert isinstance(failure, grpc.aio.AioRpcError)
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(failure)
    assert (info.reason, dict(info.metadata)) == ("invalid_request", {"request_id": "rid-9"})
    assert "did not arrive in time" in (failure.details() or "")
    assert asyncio.get_running_loop().time() - started < 20
    assert (recorder.decoded, recorder.served) == (0, 0)


@pytest.mark.parametrize("method", ["/test.Gate/Watch", "/test.Gate/WatchWriting"])
async def test_a_server_streaming_call_is_served_through_the_gate(method: str) -> None:
    recorder = Recorder()
    assert await _call(recorder, FakeClock(), method, message_timeout=0.3) == [b"req", b"req"]
    assert (recorder.decoded, recorder.served, recorder.screened) == (1, 1, [])


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b"unreachable"


async def test_a_call_closed_without_a_request_message_is_invalid_request() -> None:
    recorder = Recorder()
    failure = await _call(recorder, FakeClock(), requests=_nothing())
    assert isinstance(failure, grpc.aio.AioRpcError)
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(failure).reason == "invalid_request"
    assert (recorder.decoded, recorder.served) == (0, 0)


async def test_an_admitted_call_is_decoded_and_served_with_its_connection_and_budget() -> None:
    recorder = Recorder()
    assert await _call(recorder, FakeClock()) == b"req"
    assert (recorder.decoded, recorder.served) == (1, 1)
    [(flow, budget)] = recorder.screened
    # grpc sends the timeout rounded up (to 100 ms at this size): up to 30.1 s reaches the server
    assert flow.startswith("ipv") and budget is not None and 0 < budget <= 30.1 + 1e-3


async def test_a_request_that_does_not_decode_is_invalid_request_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Red team, session 5: the gate decodes the request itself now; bytes that are not the
    method's message came out as UNKNOWN with an ERROR traceback line per call, from callers
    nobody authenticated. They are the contract's INVALID_ARGUMENT invalid_request."""
    recorder = Recorder()
    recorder.undecodable = True
    with caplog.at_level(logging.ERROR):
        failure = await _call(recorder, FakeClock())
    assert isinstance(failure, grpc.aio.AioRpcError)
    assert failure.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(failure)
    assert (info.reason, dict(info.metadata)) == ("invalid_request", {"request_id": "rid-9"})
    assert (recorder.decoded, recorder.served) == (1, 0)
    # The traceback this guards against is grpc's (grpc._cython.cygrpc). asyncio's "Task was
    # destroyed but it is pending!" for a grpc.aio call task that the garbage collector happens
    # to finalize during this test (seen once in a combined run, CI 2026-12-03) is not it.
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name != "asyncio"]
    assert not errors


@pytest.mark.parametrize(("longest", "refused"), [(3, False), (2, True)])
async def test_a_request_longer_than_the_bound_is_invalid_request_and_never_decoded(
    longest: int, refused: bool
) -> None:
    recorder = Recorder()
    result = await _call(recorder, FakeClock(), max_request_bytes=longest)  # b"req": 3 bytes
    if refused:
        assert isinstance(result, grpc.aio.AioRpcError)
        assert result.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(result).reason == "invalid_request"
        assert "(2 bytes)" in (result.details() or "")
        assert (recorder.decoded, recorder.served) == (0, 0)
    else:
        assert result == b"req"
        assert (recorder.decoded, recorder.served) == (1, 1)


async def test_other_methods_are_not_screened() -> None:
    recorder = Recorder()
    recorder.refusing = True
    assert await _call(recorder, FakeClock(), "/test.Gate/Other") == b"req"
    assert recorder.screened == []


def test_refusals_are_logged_once_per_interval_with_their_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    shed_log = ShedLog(clock, interval=10.0)
    error = SlowDownError("busy", log_detail="overload: queue of 1 full")
    with caplog.at_level(logging.WARNING, logger="sekisho.rpc.admission_gate"):
        for port in range(1000):
            shed_log.refused(error, f"ipv4:10.0.0.1:{40000 + port}")
        clock.advance(10.0)
        shed_log.refused(error, "ipv6:[::1]:5000")
    lines = [record for record in caplog.records if record.getMessage() == "overload_shed"]
    assert [line.__dict__["refused"] for line in lines] == [1, 1000]
    assert lines[0].__dict__["last"] == "overload: queue of 1 full"
    # Who was refused, by address (a flood's connections each have their own port).
    assert [line.__dict__["peers"] for line in lines] == [
        {"10.0.0.1": 1},
        {"10.0.0.1": 999, "[::1]": 1},
    ]
    assert [line.__dict__["last_peer"] for line in lines] == ["10.0.0.1", "[::1]"]


async def test_the_shed_line_names_the_refused_calls_peer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    recorder = Recorder()
    recorder.refusing = True
    with caplog.at_level(logging.WARNING, logger="sekisho.rpc.admission_gate"):
        await _call(recorder, FakeClock())
    [line] = [record for record in caplog.records if record.getMessage() == "overload_shed"]
    assert line.__dict__["peers"] == {"127.0.0.1": 1}
    assert line.__dict__["last_peer"] == "127.0.0.1"
