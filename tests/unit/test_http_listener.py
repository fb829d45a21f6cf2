"""GuardedServer (http/listener.py) on real loopback sockets: what its shutdown releases."""

import contextlib
import socket

import pytest
from sekisho.http.listener import GuardedServer, bind

from tests.fakes.clock import FakeClock
from tests.unit.test_http_guard import _guard


def _never_served() -> object:
    pytest.fail("the connection was handed to aiohttp")


async def test_closing_releases_a_connection_accepted_but_not_yet_served() -> None:
    """close() in the loop pass that accepted a connection cancels its hand-over before it ever
    ran: the connection is still released and its socket closed (nothing else would close it)."""
    guard = _guard(FakeClock())
    listeners = bind("127.0.0.1", 0, backlog=8, reuse_port=None)
    server = GuardedServer(listeners, guard, _never_served, None, 8)  # type: ignore[arg-type]
    with socket.create_connection(listeners[0].getsockname()[:2], timeout=10) as client:
        server._accept(listeners[0])  # the connection is in the accept queue: connect returned
        assert guard.open == 1
        server.close()
        await server.wait_closed()
        assert guard.open == 0
        with contextlib.suppress(ConnectionResetError):  # closed by the server: EOF or reset
            assert client.recv(1) == b""
