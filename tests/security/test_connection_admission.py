"""New HTTP connections are admitted before any TLS work (issue 14 item 2; http/listener.py).

A TLS handshake costs ~1.6 ms of the event loop's CPU (bench/results/handshake_flood.md): a peer
opening and dropping connections in a loop, or holding connections that never send a ClientHello,
must be refused before the server answers a ClientHello. Real sockets on loopback, real TLS.
"Refused before any TLS work" is observed from outside: the server never answers the
ClientHello (reset or closed with no byte), where an admitted connection gets its ServerHello.
Each test fails if its bound is removed.
"""

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sekisho.devidp import DevIdentityProvider
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore

from tests.integration.conftest import dev_idp, stack_settings  # noqa: F401 (fixture)
from tests.loopback import closed_within
from tests.pki import build_pki

GIVE_UP_SECONDS = 10.0  # only stops a test whose connection is never answered or closed
NEVER = 1e-6  # a refill rate no test outlasts: one token per ~12 days
LOOSE = {
    "new_connections_per_second": 1e6,
    "new_connections_burst": 100_000,
    "new_connections_per_second_per_peer": 1e6,
    "new_connections_burst_per_peer": 100_000,
}

Start = Callable[..., Awaitable[Service]]


@pytest.fixture
async def start(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> AsyncIterator[Start]:
    """start(tls=True, **http): a service whose [http] bounds are LOOSE updated with `http`."""
    services: list[Service] = []
    pki = build_pki(tmp_path / "pki")
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)

    async def starting(*, tls: bool = True, **http: Any) -> Service:
        server: dict[str, Any] = {}
        if tls:
            server = {
                "tls_cert_file": str(pki.server.cert_file),
                "tls_key_file": str(pki.server.key_file),
            }
        settings = stack_settings(
            dev_idp.issuer,
            keys,
            server=server,
            http={"header_timeout_seconds": 60.0, **LOOSE, **http},
            metrics={"listen": "127.0.0.1:0"},
        )
        service = await start_service(settings)
        services.append(service)
        return service

    yield starting
    for service in services:
        await service.stop(0.5)


def _client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    return context


async def _answers_client_hello(port: int, source: str = "127.0.0.1") -> bool:
    """Send a ClientHello from `source`: whether the server answers it (any TLS bytes back)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = _client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()  # writes the ClientHello to `outgoing`
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    except ConnectionError:
        return False  # reset at accept, before the connect completed
    try:
        writer.write(outgoing.read())
        return bool(await asyncio.wait_for(reader.read(4096), GIVE_UP_SECONDS))
    except ConnectionError:
        return False
    finally:
        writer.transport.abort()


async def _raw(
    port: int, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection that never sends a byte (no ClientHello)."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _get_healthz(port: int, context: ssl.SSLContext | None) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: sekisho\r\n\r\n")
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    finally:
        writer.transport.abort()


@pytest.mark.integration
async def test_a_peer_beyond_its_new_connection_rate_is_refused_before_the_handshake(
    start: Start,
) -> None:
    service = await start(
        new_connections_per_second_per_peer=NEVER, new_connections_burst_per_peer=3
    )
    guard = service.http_guard
    assert guard is not None
    answered = [await _answers_client_hello(service.http_port) for _ in range(5)]
    assert answered == [True, True, True, False, False]  # the burst, then no ServerHello
    assert await _answers_client_hello(service.http_port, source="127.0.0.2")  # another peer
    assert guard.handshakes_started == 4
    assert guard.refused_by_reason["rate_per_peer"] == 2
    metrics = service.observability.metrics
    assert metrics is not None
    metrics.sample(0.0)
    body, _ = metrics.render()
    assert b'sekisho_http_connections_refused{reason="rate_per_peer"} 2.0' in body


@pytest.mark.integration
async def test_new_connections_across_peers_are_bounded_in_total(start: Start) -> None:
    service = await start(new_connections_per_second=NEVER, new_connections_burst=3)
    sources = [f"127.0.0.{n}" for n in range(2, 7)]
    answered = [await _answers_client_hello(service.http_port, source) for source in sources]
    assert answered == [True, True, True, False, False]
    assert service.http_guard is not None
    assert service.http_guard.refused_by_reason["rate"] == 2


@pytest.mark.integration
async def test_plain_tcp_new_connections_are_not_rate_bounded(start: Start) -> None:
    """Plain TCP is where a TLS-terminating sidecar connects (every client from its address)
    and has no handshake to protect: the open-connection bounds hold, the rates do not."""
    service = await start(
        tls=False, new_connections_per_second_per_peer=NEVER, new_connections_burst_per_peer=2
    )
    heads = [await _get_healthz(service.http_port, None) for _ in range(5)]
    assert all(head.startswith(b"HTTP/1.1 200") for head in heads)
    assert service.http_guard is not None
    assert service.http_guard.refused == 0


@pytest.mark.integration
async def test_handshakes_in_progress_are_bounded(start: Start) -> None:
    # A long handshake timeout: a handshake a tenth of it old gives its slot to a new connection
    # (http/listener.py, STALE_HANDSHAKE_FRACTION), which this test must not wait for.
    service = await start(max_handshakes=2, handshake_timeout_seconds=600.0)
    guard = service.http_guard
    assert guard is not None
    silent = [await _raw(service.http_port), await _raw(service.http_port, "127.0.0.2")]
    try:
        # Both silent connections hold a handshake slot: a third peer's ClientHello goes
        # unanswered. Once one of them leaves, a new connection is served again.
        assert not await _answers_client_hello(service.http_port, "127.0.0.3")
        assert guard.refused_by_reason["handshakes"] == 1
        silent[0][1].transport.abort()
        await _until(lambda: guard.handshaking == 1)
        assert await _answers_client_hello(service.http_port, "127.0.0.3")
    finally:
        for _, writer in silent:
            writer.transport.abort()


@pytest.mark.integration
async def test_connections_without_a_client_hello_count_against_the_per_peer_bound(
    start: Start,
) -> None:
    # Before, asyncio held them for its 60 s handshake timeout outside every bound: thousands
    # could exhaust the worker's file descriptors and take gRPC down with HTTP.
    service = await start(max_connections_per_peer=3)
    silent = [await _raw(service.http_port) for _ in range(3)]
    try:
        assert service.http_guard is not None and service.http_guard.open == 3
        assert not await _answers_client_hello(service.http_port)
        assert service.http_guard.refused_by_reason["connections_per_peer"] == 1
    finally:
        for _, writer in silent:
            writer.transport.abort()


@pytest.mark.integration
async def test_a_connection_that_never_sends_a_client_hello_is_closed_by_the_timeout(
    start: Start,
) -> None:
    service = await start(handshake_timeout_seconds=0.5)
    reader, writer = await _raw(service.http_port)
    try:
        assert await closed_within(reader, GIVE_UP_SECONDS)
        guard = service.http_guard
        assert guard is not None
        await _until(lambda: guard.open == 0)
        assert (guard.handshakes_started, guard.handshakes_failed) == (1, 1)
    finally:
        writer.transport.abort()


@pytest.mark.integration
async def test_a_pool_opening_its_connections_at_once_is_served_under_the_defaults(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> None:
    """A gateway's pool opens as many connections as one peer may hold, at once: the default
    per-peer burst admits them all (the bound must not cut off a legitimate pool)."""
    pki = build_pki(tmp_path / "pki")
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer,
        keys,
        server={
            "tls_cert_file": str(pki.server.cert_file),
            "tls_key_file": str(pki.server.key_file),
        },
    )
    service = await start_service(settings)
    try:
        pool = settings.http.max_connections_per_peer
        context = ssl.create_default_context(cadata=pki.ca.pem.cert.decode())
        context.check_hostname = False  # the certificate names 127.0.0.1 and localhost
        heads = await asyncio.gather(
            *(_get_healthz(service.http_port, context) for _ in range(pool))
        )
        assert all(head.startswith(b"HTTP/1.1 200") for head in heads)
        assert service.http_guard is not None and service.http_guard.refused == 0
    finally:
        await service.stop(0.5)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most GIVE_UP_SECONDS) for the server's side of a close to be seen."""
    for _ in range(int(GIVE_UP_SECONDS / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never held")
