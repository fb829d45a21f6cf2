"""The HTTP listener's accept loop: the guard admits each TCP connection before any TLS work.

asyncio's `create_server(ssl=…)` runs the TLS handshake (~1.6 ms of event-loop CPU with a P-256
certificate, on the thread that also runs gRPC's Python side) before the protocol ever sees the
connection, so no bound could refuse a peer opening and dropping connections in a loop: it spent
the loop on handshakes, and a TCP connection that never sent a ClientHello held a descriptor for
asyncio's 60 s handshake timeout, outside every connection bound (bench/results/
handshake_flood.md). Here the listening sockets are read directly: each accepted socket is
admitted or refused by ConnectionGuard.admit (counts, rates; a refusal is a reset, no task, no
TLS object), and only an admitted one is handed to `loop.connect_accepted_socket`, which runs the
handshake within `handshake_timeout`. Plain TCP takes the same path, without the handshake.
"""

import asyncio
import errno
import functools
import logging
import socket
import ssl
import struct
from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from sekisho.http.app import SERVER_HEADER
from sekisho.http.guard import Connection, ConnectionGuard, GuardedProtocol

log = logging.getLogger(__name__)

# accept() failures that mean "out of descriptors or memory for now": stop accepting for a while
# (as asyncio's own accept loop does) rather than spin on a listening socket that stays readable.
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
ACCEPT_PAUSE = 1.0
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST, keeps no TIME_WAIT
# With `max_handshakes` in progress, a new TLS connection takes the place of the oldest handshake
# once that one has run this fraction of [http] handshake_timeout_seconds (1 s of the default
# 10 s; a handshake takes milliseconds), rather than being refused. Refusing the new one let four
# addresses (4 x max_connections_per_peer = max_handshakes) hold every handshake slot with TCP
# connections that never send a ClientHello, renewed at 25.6 connections/s (one per slot per
# handshake timeout): every other client's new TLS connections were reset (red team session 12,
# second pass). Holding the slots now takes max_handshakes new connections per second (256/s),
# more than the per-worker rate admits (100/s).
STALE_HANDSHAKE_FRACTION = 0.1


def _peer(address: object) -> str:
    return str(address[0]) if isinstance(address, tuple) else "unix"


class GuardedServer(asyncio.AbstractServer):
    """Accepts on `sockets`, admits through `guard`, serves with aiohttp's protocol `inner`."""

    def __init__(
        self,
        sockets: list[socket.socket],
        guard: ConnectionGuard,
        inner: Callable[[], RequestHandler],
        ssl_context: ssl.SSLContext | None,
        backlog: int,
        *,
        stale_handshake: float | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._sockets = sockets
        self._guard = guard
        self._inner = inner
        self._ssl = ssl_context
        self._backlog = backlog
        self._serving = False
        self._tasks: set[asyncio.Task[bool]] = set()  # connections being set up (TLS)
        # TLS hand-overs in progress, oldest first: when each started (the loop's clock, which
        # asyncio's handshake timeout runs on too); and those ended to make room for a new one.
        self._handshakes: dict[asyncio.Task[bool], float] = {}
        self._evicted: set[asyncio.Task[bool]] = set()
        self._stale_handshake = (
            guard.limits.handshake_timeout * STALE_HANDSHAKE_FRACTION
            if stale_handshake is None
            else stale_handshake
        )

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    async def serve_forever(self) -> None:
        await self.start_serving()
        await asyncio.Event().wait()  # until cancelled

    async def start_serving(self) -> None:
        self._serving = True
        for listener in self._sockets:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def close(self) -> None:
        """Stop accepting and close the listening sockets; handshakes in progress are dropped
        (connections already served are aiohttp's to close)."""
        if self._serving:
            for listener in self._sockets:
                self._loop.remove_reader(listener.fileno())
        self._serving = False
        for listener in self._sockets:
            listener.close()
        for task in self._tasks:
            task.cancel()

    async def wait_closed(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self._backlog):  # as asyncio does: up to a backlog's worth per wake-up
            try:
                sock, address = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _RESOURCE_ERRORS:
                    raise
                self._pause(listener, exc)
                return
            if self._ssl is not None:
                self._end_a_stale_handshake()
            connection = self._guard.admit(_peer(address), tls=self._ssl is not None)
            if connection is None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                sock.close()
                continue
            sock.setblocking(False)
            task = self._loop.create_task(self._serve(sock, connection))
            self._tasks.add(task)
            if self._ssl is not None:
                self._handshakes[task] = self._loop.time()
            task.add_done_callback(functools.partial(self._served, sock, connection))

    def _end_a_stale_handshake(self) -> None:
        """With every handshake slot taken, end the oldest handshake if it has run
        `stale_handshake` seconds: its slot is released now, its socket when its task ends."""
        if self._guard.handshaking < self._guard.limits.max_handshakes or not self._handshakes:
            return
        task, started = next(iter(self._handshakes.items()))
        if self._loop.time() - started < self._stale_handshake:
            return
        del self._handshakes[task]
        self._evicted.add(task)
        self._guard.handshake_finished(ok=False)
        task.cancel()

    def _pause(self, listener: socket.socket, exc: OSError) -> None:
        log.error("http_accept_failed", extra={"error": exc.strerror, "pause": ACCEPT_PAUSE})
        self._loop.remove_reader(listener.fileno())
        self._loop.call_later(ACCEPT_PAUSE, self._resume, listener)

    def _resume(self, listener: socket.socket) -> None:
        if self._serving:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    async def _serve(self, sock: socket.socket, connection: Connection) -> bool:
        """Hand an admitted socket to asyncio (TLS first, when TLS); whether it is served."""
        tls = self._ssl is not None
        try:
            await self._loop.connect_accepted_socket(
                lambda: GuardedProtocol(self._guard, self._inner, connection),
                sock,
                ssl=self._ssl,
                ssl_handshake_timeout=self._guard.limits.handshake_timeout if tls else None,
            )
        except OSError:  # a failed or timed-out handshake (ssl.SSLError, TimeoutError), a reset
            return False  # asyncio has closed the socket
        return True

    def _served(
        self, sock: socket.socket, connection: Connection, task: asyncio.Task[bool]
    ) -> None:
        """Release an admitted connection asyncio does not serve: its handshake failed, or close()
        cancelled it (perhaps before `_serve` ever ran: then nothing else closes `sock`), or it
        made room for a new one (`_end_a_stale_handshake`, which released its handshake slot)."""
        self._tasks.discard(task)
        self._handshakes.pop(task, None)
        evicted = task in self._evicted
        self._evicted.discard(task)
        error = None if task.cancelled() else task.exception()
        served = not task.cancelled() and error is None and task.result()
        if self._ssl is not None and not evicted:
            self._guard.handshake_finished(ok=served)
        if not served:
            sock.close()  # a no-op when asyncio has closed it
            self._guard.closed(connection)
        if error is not None:
            raise error  # a bug: reported by the loop's exception handler


def bind(host: str, port: int, *, backlog: int, reuse_port: bool | None) -> list[socket.socket]:
    """Listening sockets for `host` (every address it resolves to; all when empty) and `port`,
    as asyncio's create_server binds them. Raises: OSError (the first address that fails)."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            listener = socket.socket(family, kind, proto)
            sockets.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            listener.bind(address)
            listener.listen(backlog)
            listener.setblocking(False)
    except OSError:
        for listener in sockets:
            listener.close()
        raise
    return sockets


class NamedRequestHandler(RequestHandler):
    """aiohttp's protocol, whose own error answers name the server as SERVER_HEADER too. A
    request aiohttp cannot parse (a bad method, header line or chunk) is answered by
    handle_error outside the application, where on_response_prepare (http/app.py) never runs:
    it said `Server: Python/3.x aiohttp/3.x` to anyone sending one malformed line (red team
    session 18)."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        response.headers[hdrs.SERVER] = SERVER_HEADER
        return response


def named_handlers(server: web.Server) -> Callable[[], RequestHandler]:
    """What `server()` makes (aiohttp's Server.__call__), as a NamedRequestHandler."""
    return functools.partial(NamedRequestHandler, server, loop=server._loop, **server._kwargs)


class GuardedSite(web.BaseSite):
    """A TCP site whose connections the guard admits before any TLS work (aiohttp's TCPSite
    otherwise)."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ConnectionGuard,
        *,
        ssl_context: ssl.SSLContext | None = None,
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
        server = self._server
        if isinstance(server, GuardedServer) and server.sockets:
            return int(server.sockets[0].getsockname()[1])
        return self._port

    async def start(self) -> None:
        await super().start()
        inner = self._runner.server
        assert inner is not None
        sockets = bind(self._host, self._port, backlog=self._backlog, reuse_port=self._reuse_port)
        server = GuardedServer(
            sockets, self._guard, named_handlers(inner), self._ssl_context, self._backlog
        )
        await server.start_serving()
        self._server = server
