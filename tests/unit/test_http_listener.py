"""GuardedServer (http/listener.py) on real loopback sockets: what its shutdown releases."""

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from sekisho.http.listener import GuardedServer, bind

from tests.fakes.clock import FakeClock
from tests.pki import build_pki
from tests.unit.test_http_guard import _guard

GIVE_UP_SECONDS = 10.0  # only stops a test whose connection is never answered or closed


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


def _server_context(folder: Path) -> ssl.SSLContext:
    pki = build_pki(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.cert_file, pki.server.key_file)
    return context


async def _client_hello_answered(port: int, source: str) -> bool:
    """Whether a ClientHello sent from `source` gets TLS bytes back (no: reset or closed)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()  # writes the ClientHello to `outgoing`
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except ConnectionError:
        return False
    try:
        writer.write(outgoing.read())
        return bool(await asyncio.wait_for(reader.read(4096), GIVE_UP_SECONDS))
    except ConnectionError:
        return False
    finally:
        writer.transport.abort()


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most GIVE_UP_SECONDS, a hang guard) for the server to have seen the sockets."""
    for _ in range(int(GIVE_UP_SECONDS / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")


@pytest.mark.parametrize("stale_after", [0.0, 3600.0], ids=["stale", "fresh"])
async def test_a_full_handshake_bound_ends_the_oldest_stale_handshake_for_a_new_one(
    tmp_path: Path, stale_after: float
) -> None:
    """Red team session 12, second pass: with every handshake slot held by connections that
    never send a ClientHello (4 addresses x 64 fill the default 256), every other client's new
    TLS connection was reset until they timed out, and the holders renew them at 25.6/s. A slot
    held past `stale_handshake` now goes to the new connection; fresh ones still refuse it."""
    guard = _guard(FakeClock(), max_handshakes=2)
    listeners = bind("127.0.0.1", 0, backlog=8, reuse_port=None)
    port = listeners[0].getsockname()[1]
    server = GuardedServer(
        listeners,
        guard,
        web.Server(lambda _: web.Response()),
        _server_context(tmp_path),
        8,
        stale_handshake=stale_after,
    )
    await server.start_serving()
    try:
        silent = [
            await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            for _ in range(2)
        ]
        await _until(lambda: guard.handshaking == 2)
        answered = await _client_hello_answered(port, "127.0.0.3")
        assert answered is (stale_after == 0.0)
        if answered:  # the oldest silent connection made room: closed by the server
            reader = silent[0][0]
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(1), GIVE_UP_SECONDS) == b""
        else:
            assert guard.refused_by_reason["handshakes"] == 1
        for _, writer in silent:
            writer.transport.abort()
        await _until(lambda: guard.open == 0)
        assert guard.handshaking == 0  # every slot released once, never below zero
    finally:
        server.close()
        await server.wait_closed()
