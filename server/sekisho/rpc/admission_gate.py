"""The overload screen at the gRPC boundary: refuse what the worker cannot serve in time before
any per-call work (issue 14; docs/operations.md "Overload and abuse bounds").

A Sekisho refusal used to cost a full exchange's front half (the request decoded, the caller
authenticated, the request validated, metrics opened, an audit line written) on top of grpc's
own per-call cost: 0.6-0.85 ms of CPU, half an exchange, paid for every call of the excess on a
core that is already serving what it can (bench/results/overload.md). This interceptor runs the
admission checks that need no caller identity (admission.Admission.screen) as the call reaches
Python, with the request still undecoded bytes, and answers a refusal with the contract's status
(RESOURCE_EXHAUSTED, ErrorInfo `slow_down` with `retry_after`, docs/architecture.md §3).
Refusals here are not audited one by one (no token decision was made): one `overload_shed` line
per interval counts them and names the peer addresses refused most, and `sekisho_admission_shed`
has them by reason.

The gated method is served as grpc's stream-unary kind, which hands the handler the call before
its request message has been received: grpc.aio's unary kind first awaits the message (a batch
through grpc core and the event loop), so a refusal there paid for receiving a request it never
reads. Here a refused call is answered at once and an admitted one reads its one message
(`context.read()`, the same receive the unary kind does). A refusal then costs ~0.07-0.09 ms of
CPU less (bench/results/overload_session7.md).

Every other method that takes one request message (unary and server-streaming: GetJwks, Envoy's
Check, Health Check and Watch) is served the same way without the screen, for one bound: the
message must arrive within `message_timeout` of the call's start (`[grpc]
message_timeout_seconds`), else the call is refused `invalid_request`. grpc.aio's own unary kind
waits for it until the client's deadline, and a client may set none: a call opened with its
HEADERS and never its message stayed open for good (the HTTP listener's header and body timeouts
have no gRPC twin in grpc core), outside every other bound (Watch's open-stream bound counts a
call once its message is in), 16 per connection and connections unbounded per peer (red team
session 19, bench/results/redteam_session19.md).
"""

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from sekisho.admission import peer_address
from sekisho.clock import Clock
from sekisho.errors import InvalidRequestError, SlowDownError
from sekisho.log_throttle import SUMMARY_INTERVAL, LogThrottle, PeerCounts
from sekisho.rpc.handler_cache import Behaviour, HandlerCache
from sekisho.rpc.interceptors import request_id_of
from sekisho.rpc.status import abort, to_grpc_status

log = logging.getLogger(__name__)

Screen = Callable[[str, float | None], None]
# A stream-unary behaviour: its request iterator is unused (the gate reads the one message).
Gated = Callable[[object, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
Deserialize = Callable[[bytes], Any] | None


class ShedLog:
    """At most one `overload_shed` line per interval, counting the refusals since the last one
    and naming the peers refused most: a flood refused at thousands per second must not also
    write thousands of lines, and the operator reading the line needs to know where it is from."""

    def __init__(self, clock: Clock, interval: float = SUMMARY_INTERVAL) -> None:
        self._throttle = LogThrottle(clock, interval)
        self._peers = PeerCounts()

    def refused(self, error: SlowDownError, peer: str) -> None:
        """Count one refusal of a call from `peer` (grpc's peer string, e.g. `ipv4:ADDR:PORT`:
        counted by address, as a flood opens connection after connection)."""
        self._peers.add(peer_address(peer))
        if (refused := self._throttle.count()) is None:
            return
        log.warning(
            "overload_shed",
            extra={
                "refused": refused,  # since the last line (the first: this one)
                "interval": self._throttle.interval,
                "peers": self._peers.take(),  # the most refused, by address, since the last line
                "last": error.log_detail,
                "last_peer": peer_address(peer),
            },
        )


class AdmissionGate(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Screens the calls of `methods` before their request is decoded, and refuses a request
    message longer than `max_request_bytes` (the largest the methods' limits can accept) without
    decoding it; the request message of every method taking one must arrive within
    `message_timeout` seconds."""

    def __init__(
        self,
        screen: Screen,
        methods: frozenset[str],
        shed_log: ShedLog,
        max_request_bytes: int,
        *,
        message_timeout: float,
    ) -> None:
        self._screen = screen
        self._methods = methods
        self._shed_log = shed_log
        self._max_request_bytes = max_request_bytes
        self._message_timeout = message_timeout
        self._gated = HandlerCache()  # the methods served: bounded by HandlerCache's limit

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or (handler.unary_unary is None and handler.unary_stream is None):
            return handler  # no request message to wait for, or no such method
        return self._gated.wrapped(handler_call_details.method, handler, self._gate_handler)

    def _gate_handler(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._bounded_stream(handler.unary_stream, handler.request_deserializer),
                request_deserializer=None,
                response_serializer=handler.response_serializer,
            )
        screen = method in self._methods
        return grpc.stream_unary_rpc_method_handler(
            self._gate(handler.unary_unary, handler.request_deserializer, screen=screen),
            request_deserializer=None,  # bytes: a refused request is never received or decoded
            response_serializer=handler.response_serializer,
        )

    def _gate(self, behaviour: Behaviour, deserialize: Deserialize, *, screen: bool) -> Gated:
        async def gated(_: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            if screen:
                peer = context.peer()
                try:
                    self._screen(peer, context.time_remaining())
                except SlowDownError as error:
                    self._shed_log.refused(error, peer)
                    await abort(context, to_grpc_status(error, request_id_of(context)))
            request = await self._received(context)  # the one message of a unary call
            if screen and isinstance(request, bytes) and len(request) > self._max_request_bytes:
                # Decoding alone costs ~15 us per KB of many short strings (80,000 one-letter
                # scopes in 240 KB: 3-5 ms before validation refused the count); a request
                # longer than any valid one is refused at the cost of a length check.
                too_long = InvalidRequestError(
                    f"the request is larger than any the [limits] allow "
                    f"({self._max_request_bytes} bytes)"
                )
                await abort(context, to_grpc_status(too_long, request_id_of(context)))
            return await behaviour(await _decoded_or_abort(request, deserialize, context), context)

        return gated

    def _bounded_stream(self, behaviour: Any, deserialize: Deserialize) -> Any:
        """A server-streaming behaviour as the stream-stream kind, of the same style: grpc.aio
        sends what an async generator yields, and a coroutine writes its own (context.write)."""

        async def request_of(context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return await _decoded_or_abort(await self._received(context), deserialize, context)

        if inspect.isasyncgenfunction(behaviour):

            async def yielding(_: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async for response in behaviour(await request_of(context), context):
                    yield response

            return yielding

        async def writing(_: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            await behaviour(await request_of(context), context)

        return writing

    async def _received(self, context: grpc.aio.ServicerContext[Any, Any]) -> object:
        """The call's request message as it arrives (grpc.aio.EOF: closed without one).
        Raises: grpc.aio.AbortError (invalid_request) once `message_timeout` has passed."""
        try:
            async with asyncio.timeout(self._message_timeout):
                return await context.read()
        except TimeoutError:
            late = InvalidRequestError(
                "the request message did not arrive in time",
                log_detail=f"no request message within {self._message_timeout:g} s",
            )
            await abort(context, to_grpc_status(late, request_id_of(context)))


async def _decoded_or_abort(
    request: object, deserialize: Deserialize, context: grpc.aio.ServicerContext[Any, Any]
) -> Any:
    """The request message. Raises: grpc.aio.AbortError (invalid_request) when it is not one."""
    try:
        return _decoded(request, deserialize)
    except DecodeError:
        # Not a message of the method: the contract's invalid_request. Left to grpc it was
        # UNKNOWN and an ERROR line with a traceback for every such call (no caller
        # authenticated), which no rate limit bounds.
        invalid = InvalidRequestError("the request message does not decode")
        await abort(context, to_grpc_status(invalid, request_id_of(context)))


def _decoded(request: object, deserialize: Deserialize) -> Any:
    """The request message. Raises: DecodeError (not the method's message, or none at all)."""
    if not isinstance(request, bytes):  # grpc.aio.EOF: the client closed without sending one
        raise DecodeError("no request message")
    return deserialize(request) if deserialize is not None else request
