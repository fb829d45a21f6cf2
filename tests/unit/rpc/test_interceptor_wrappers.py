"""ErrorMappingInterceptor builds each method's wrapper once, and the wrapper still does its
per-call work (request id, error mapping) on every call."""

import contextvars
from typing import Any

import grpc
import pytest
from sekisho.errors import InvalidRequestError
from sekisho.rpc.interceptors import ErrorMappingInterceptor


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method


async def _echo(request: bytes, context: Any) -> bytes:
    return request


async def test_one_wrapper_per_method_and_a_new_one_when_the_handler_changes() -> None:
    interceptor = ErrorMappingInterceptor(contextvars.ContextVar("request_id"))
    first = grpc.unary_unary_rpc_method_handler(_echo)
    second = grpc.unary_unary_rpc_method_handler(_echo)
    handlers = {"/t.S/A": first}

    async def continuation(details: Any) -> grpc.RpcMethodHandler:
        return handlers[details.method]

    wrapped = await interceptor.intercept_service(continuation, _Details("/t.S/A"))
    assert wrapped is not first
    assert await interceptor.intercept_service(continuation, _Details("/t.S/A")) is wrapped
    handlers["/t.S/A"] = second  # a handler re-registered: its own wrapper, never the old one
    rewrapped = await interceptor.intercept_service(continuation, _Details("/t.S/A"))
    assert rewrapped is not wrapped and rewrapped is not second


async def test_each_call_through_the_kept_wrapper_gets_its_own_request_id() -> None:
    async def behaviour(request: bytes, context: Any) -> bytes:
        if request == b"refuse":
            raise InvalidRequestError("bad")
        return request

    handler = grpc.method_handlers_generic_handler(
        "t.S", {"Call": grpc.unary_unary_rpc_method_handler(behaviour)}
    )
    server = grpc.aio.server(
        interceptors=[ErrorMappingInterceptor(contextvars.ContextVar("request_id"))]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = channel.unary_unary("/t.S/Call")
            for rid in ("rid-1", "rid-2"):
                call = stub(b"ok", metadata=(("x-request-id", rid),))
                assert await call == b"ok"
                assert (await call.trailing_metadata())["x-request-id"] == rid
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub(b"refuse", metadata=(("x-request-id", "rid-3"),))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert dict(caught.value.trailing_metadata())["x-request-id"] == "rid-3"
    finally:
        await server.stop(0)
