"""Connection bounds of the HTTP listener (issue 14 item 2); aiohttp has none of these itself.

- Header timeout: a connection must complete a request's headers within `header_timeout`
  of opening, or of the first byte of its next request, or it is closed (slowloris: thousands of
  half-sent requests would otherwise hold file descriptors until gRPC cannot accept either).
- Body timeout: the whole body must arrive within `body_timeout` (middleware; 408 and close).
- Connections per peer address and in total: one more is closed at once, before aiohttp sees it.
- Keep-alive: idle connections close after aiohttp's `keepalive_timeout` (set by the caller of
  `handler_args`), and a connection closes after `max_requests_per_connection` requests.
- Compressed bodies: never inflated. aiohttp inflates a `Content-Encoding: gzip|deflate|br|zstd`
  body as it arrives, before any handler or bound sees it (`client_max_size` counts inflated
  bytes, and the lingering read after a refusal inflates the rest): 255 KB of gzip cost 0.5-0.76 s
  of event-loop CPU, unauthenticated (bench/results/redteam_session10.md). Nothing Sekisho
  serves takes a compressed body (RFC 6749 forms are small), so the parser's decompression is
  off and a body with any content coding but `identity` is refused 415 (RFC 9110 §15.5.16).

GuardedProtocol wraps aiohttp's protocol object rather than subclassing it; it reads one private
counter (`_request_count`, requests parsed on this connection) to see when headers are complete.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """[http] settings, built by protection.connection_limits (defaults: HttpLimitsConfig)."""

    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_requests_per_connection: int
    max_connections: int
    max_connections_per_peer: int


@dataclass(slots=True)
class _Connection:
    peer: str
    requests: int = 0
    in_request: bool = False


class ConnectionGuard:
    """Counts connections per peer, arms header timers; shared by every connection of a site."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._per_peer: dict[str, int] = {}
        self._connections: dict[asyncio.BaseTransport, _Connection] = {}
        self.refused = 0
        self.timed_out = 0
        self.encoded_refused = 0  # bodies refused 415 for a content coding

    @property
    def open(self) -> int:
        return len(self._connections)

    def factory(self, inner: Callable[[], RequestHandler]) -> Callable[[], asyncio.Protocol]:
        """The protocol factory to give `loop.create_server` instead of aiohttp's."""
        return lambda: GuardedProtocol(self, inner)

    def accept(self, transport: asyncio.BaseTransport) -> bool:
        peername = transport.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else "unix"
        if (
            len(self._connections) >= self.limits.max_connections
            or self._per_peer.get(peer, 0) >= self.limits.max_connections_per_peer
        ):
            self.refused += 1
            return False
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        self._connections[transport] = _Connection(peer)
        return True

    def closed(self, transport: asyncio.BaseTransport) -> None:
        connection = self._connections.pop(transport, None)
        if connection is None:
            return
        if self._per_peer[connection.peer] <= 1:
            del self._per_peer[connection.peer]
        else:
            self._per_peer[connection.peer] -= 1

    def connection(self, transport: asyncio.BaseTransport | None) -> _Connection | None:
        return self._connections.get(transport) if transport is not None else None

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        """Body timeout, request count per connection, and 'between requests' for the timer."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            connection = self.connection(request.transport)
            if connection is not None:
                connection.in_request = True
                connection.requests += 1
            try:
                if request.body_exists and _content_coded(request):
                    self.encoded_refused += 1
                    refusal = web.Response(
                        status=415,
                        text="content coding not supported",
                        headers={"Accept-Encoding": "identity"},
                    )
                    refusal.force_close()  # the coded body is never read, let alone inflated
                    return refusal
                if request.body_exists:
                    try:
                        await asyncio.wait_for(request.read(), self.limits.body_timeout)
                    except TimeoutError:
                        self.timed_out += 1
                        timeout = web.Response(status=408, text="request body too slow")
                        timeout.force_close()  # the rest of the body is never read
                        return timeout
                response = await handler(request)
                limit = self.limits.max_requests_per_connection
                if connection is not None and limit and connection.requests >= limit:
                    response.force_close()
                return response
            finally:
                if connection is not None:
                    connection.in_request = False

        return guard


def _content_coded(request: web.Request) -> bool:
    """Whether the body carries a content coding other than identity (RFC 9110 §8.4)."""
    codings = request.headers.getall("Content-Encoding", [])
    return any(c.strip().lower() not in ("", "identity") for v in codings for c in v.split(","))


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol behind the guard's connection bounds and header timer."""

    def __init__(self, guard: ConnectionGuard, inner: Callable[[], RequestHandler]) -> None:
        self._guard = guard
        self._make_inner = inner
        self._inner: RequestHandler | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        if not self._guard.accept(transport):
            self._transport.abort()  # cheap: no parser, no task, no timer
            return
        self._inner = self._make_inner()
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            return
        connection = self._guard.connection(self._transport)
        if self._timer is None and connection is not None and not connection.in_request:
            self._arm()  # the first byte of the next request on a kept-alive connection
        parsed = inner._request_count
        inner.data_received(data)
        if inner._request_count != parsed:
            self._disarm()  # headers complete: the body timeout (middleware) takes over
            if connection is not None:
                connection.in_request = True  # until the middleware has answered it

    def eof_received(self) -> None:
        if self._inner is not None:
            self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._inner is not None and self._transport is not None:
            self._guard.closed(self._transport)
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.limits.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_too_slow(self) -> None:
        self._timer = None
        self._guard.timed_out += 1
        if self._transport is not None:
            self._transport.abort()


def handler_args(limits: ConnectionLimits) -> dict[str, Any]:
    """aiohttp RequestHandler keyword arguments for these limits."""
    # lingering_time: after an early answer, aiohttp reads (and drops) the rest of a body for at
    # most this long before closing; its default is 10 s whatever the body timeout.
    # auto_decompress: off, so a coded body is never inflated by the parser (module docstring).
    return {
        "keepalive_timeout": limits.keepalive_timeout,
        "lingering_time": limits.body_timeout,
        "auto_decompress": False,
    }


class GuardedSite(web.BaseSite):
    """A TCP site whose connections go through `guard` (aiohttp's TCPSite, plus the guard)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: Any = None,
        reuse_port: bool | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._guard = guard

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port (the kernel's choice when 0 was asked for)."""
        server = cast(asyncio.Server | None, self._server)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_port=self._reuse_port,
        )
