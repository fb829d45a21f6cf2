"""Connection bounds of the HTTP listener (issue 14 item 2); aiohttp has none of these itself.

- Header timeout: a connection must complete a request's headers within `header_timeout`
  of opening, or of the first byte of its next request, or it is closed (slowloris: thousands of
  half-sent requests would otherwise hold file descriptors until gRPC cannot accept either).
- Body timeout: the whole body must arrive within `body_timeout` (middleware; 408 and close).
  A body over the app's `client_max_size` is 413 and close. Both, and the 415 below, answer
  with the RFC 6749 §5.2 JSON body (http/oauth_errors.py): only a token request has a body.
- Connections per peer address and in total, new connections per second per peer address and in
  total (token buckets), and TLS handshakes in progress: a connection beyond any of them is closed
  at once (a reset), before any TLS work and before aiohttp sees it (http/listener.py accepts the
  TCP connection itself and starts TLS only on an admitted one: a handshake costs ~1.6 ms of
  event-loop CPU, bench/results/handshake_flood.md). A handshake must finish within
  `handshake_timeout`.
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

from sekisho.buckets import BucketTable
from sekisho.callers import RateLimit
from sekisho.clock import Clock
from sekisho.errors import (
    ContentCodingError,
    RequestBodyError,
    RequestTooLargeError,
    RequestTooSlowError,
    TransferCodingError,
)
from sekisho.http.oauth_errors import refusal_response
from sekisho.http.refusals import ConnectionRefusals

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
    new_connections: RateLimit
    new_connections_per_peer: RateLimit
    max_handshakes: int
    handshake_timeout: float


@dataclass(slots=True)
class Connection:
    """One admitted connection, from its TCP accept to its close."""

    peer: str
    requests: int = 0
    in_request: bool = False
    transport: asyncio.BaseTransport | None = None  # once connected (after TLS, when TLS)
    closed: bool = False


_ALL = ""  # the total bucket's key (peer addresses are never empty)


class ConnectionGuard:
    """Admits new connections, counts them per peer, arms header timers; shared by every
    connection of a listener."""

    def __init__(self, limits: ConnectionLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._admitted = 0
        self._per_peer: dict[str, int] = {}
        self._connections: dict[asyncio.BaseTransport, Connection] = {}
        self._total_rate = BucketTable(1)
        self._peer_rates = BucketTable()
        self.refusals = ConnectionRefusals(clock)
        self.handshaking = 0
        self.handshakes_started = 0
        self.handshakes_failed = 0  # refused by TLS, timed out, or closed by the client
        self.timed_out = 0
        self.encoded_refused = 0  # bodies refused 415 for a content coding
        self.transfer_coded_refused = 0  # bodies refused 400 for a transfer coding but chunked

    @property
    def open(self) -> int:
        """Connections admitted and not closed yet (handshakes in progress included)."""
        return self._admitted

    @property
    def refused(self) -> int:
        """New connections refused since start, for any reason."""
        return self.refusals.total

    @property
    def refused_by_reason(self) -> dict[str, int]:
        """New connections refused since start, by reason (refusals.REASONS)."""
        return self.refusals.counts

    def admit(self, peer: str, *, tls: bool) -> Connection | None:
        """A new connection from `peer` (before any byte of it is read), or None: refused, closed
        at once by the caller. Checked in order, a refusal counted under the first that fails:
        the open-connection bounds, then for TLS handshakes in progress and the per-second
        rates. The rates bound what a new connection costs, its handshake (~1.6 ms of the event
        loop); a plain-TCP accept costs what a reset does (~0.03 ms), and plain TCP is where a
        TLS-terminating sidecar or mesh proxy connects, every connection from its one address:
        a rate there would only cap the proxy."""
        reason = self._refusal(peer, tls)
        if reason:
            self.refusals.refused(reason, peer)
            return None
        self._admitted += 1
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        if tls:
            self.handshaking += 1
            self.handshakes_started += 1
        return Connection(peer)

    def _refusal(self, peer: str, tls: bool) -> str:
        limits = self.limits
        if self._admitted >= limits.max_connections:
            return "connections"
        if self._per_peer.get(peer, 0) >= limits.max_connections_per_peer:
            return "connections_per_peer"
        return self._tls_refusal(peer) if tls else ""

    def _tls_refusal(self, peer: str) -> str:
        limits = self.limits
        if self.handshaking >= limits.max_handshakes:
            return "handshakes"
        now = self._clock.now()
        if self._peer_rates.take(peer, limits.new_connections_per_peer, now):
            return "rate_per_peer"
        if self._total_rate.take(_ALL, limits.new_connections, now):
            return "rate"
        return ""

    def handshake_finished(self, *, ok: bool) -> None:
        """A TLS handshake `admit` counted has ended (`ok`: the connection is being served)."""
        self.handshaking -= 1
        if not ok:
            self.handshakes_failed += 1

    def attach(self, connection: Connection, transport: asyncio.BaseTransport) -> None:
        """`connection` is served on `transport` (aiohttp's, after TLS when TLS)."""
        connection.transport = transport
        self._connections[transport] = connection

    def closed(self, connection: Connection) -> None:
        """`connection` is gone (closed, or its handshake failed); counted once however often."""
        if connection.closed:
            return
        connection.closed = True
        if connection.transport is not None:
            self._connections.pop(connection.transport, None)
        self._admitted -= 1
        if self._per_peer[connection.peer] <= 1:
            del self._per_peer[connection.peer]
        else:
            self._per_peer[connection.peer] -= 1

    def connection(self, transport: asyncio.BaseTransport | None) -> Connection | None:
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
                    # the coded body is never read, let alone inflated
                    refusal = _refused(ContentCodingError(), request)
                    refusal.headers["Accept-Encoding"] = "identity"
                    return refusal
                if _transfer_coded(request):
                    self.transfer_coded_refused += 1
                    # aiohttp undoes the chunked framing only: the rest would be read as if
                    # uncoded, where a proxy applying the coding reads another body
                    return _refused(TransferCodingError(), request)
                if request.body_exists:
                    try:
                        await asyncio.wait_for(request.read(), self.limits.body_timeout)
                    except TimeoutError:
                        self.timed_out += 1
                        return _refused(RequestTooSlowError(), request)  # the rest unread
                    except web.HTTPRequestEntityTooLarge:
                        return _refused(
                            RequestTooLargeError(
                                f"the request body exceeds {request.client_max_size} bytes"
                            ),
                            request,
                        )
                response = await handler(request)
                limit = self.limits.max_requests_per_connection
                if connection is not None and limit and connection.requests >= limit:
                    response.force_close()
                return response
            finally:
                if connection is not None:
                    connection.in_request = False

        return guard


def _refused(error: RequestBodyError, request: web.Request) -> web.Response:
    """The RFC 6749 §5.2 answer (only a token request has a body), on a connection closed
    after it: the rest of the body is never read. With the request id, in the body and the
    header, as the token endpoint's own refusals (the caller's `X-Request-Id`, else a new one)."""
    response = refusal_response(error, request)
    response.force_close()
    return response


def _transfer_coded(request: web.Request) -> bool:
    """Whether the message carries a transfer coding other than one chunked (RFC 9112 §6.1), the
    one framing aiohttp's parser removes (red team session 20, finding 5). Chunked twice (a
    sender MUST NOT) is a coding it does not undo either: its pure-Python parser removed the
    last framing and read the inner one as the body (the C parser refuses it; second pass)."""
    codings = [
        c.strip().lower()
        for v in request.headers.getall("Transfer-Encoding", [])
        for c in v.split(",")
    ]
    named = [c for c in codings if c]
    return any(c != "chunked" for c in named) or len(named) > 1


def _content_coded(request: web.Request) -> bool:
    """Whether the body carries a content coding other than identity (RFC 9110 §8.4)."""
    codings = request.headers.getall("Content-Encoding", [])
    return any(c.strip().lower() not in ("", "identity") for v in codings for c in v.split(","))


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's protocol for a connection the guard admitted, behind its header timer."""

    def __init__(
        self, guard: ConnectionGuard, inner: Callable[[], RequestHandler], connection: Connection
    ) -> None:
        self._guard = guard
        self._make_inner = inner
        self._connection = connection
        self._inner: RequestHandler | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._guard.attach(self._connection, transport)
        self._inner = self._make_inner()
        self._inner.connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            return
        connection = self._connection
        if self._timer is None and not connection.in_request:
            self._arm()  # the first byte of the next request on a kept-alive connection
        parsed = inner._request_count
        inner.data_received(data)
        if inner._request_count != parsed:
            self._disarm()  # headers complete: the body timeout (middleware) takes over
            connection.in_request = True  # until the middleware has answered it

    def eof_received(self) -> None:
        if self._inner is not None:
            self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._guard.closed(self._connection)
        if self._inner is not None:
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
