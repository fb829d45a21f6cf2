"""Nothing unauthenticated is expensive (issue 14 item 2).

- Client-secret checks (argon2id) run off the event loop, behind per-peer and global bounds on
  concurrent and per-second attempts checked before any hashing; unknown ids cost no hash but
  take as long as a real check (no timing oracle).
- The HTTP listener closes half-sent requests (header timeout), slow bodies (body timeout),
  connections beyond the per-peer and total bounds, and kept-alive connections after N requests.
- The gRPC listener bounds streams per connection, closes connections that never finish their
  handshake and refuses calls whose request message does not come in time; Health.Watch and
  reflection streams, which stay open, are bounded per peer.
Each test fails if its defence is removed.
"""

import asyncio
import base64
import contextlib
import encodings
import json
import logging
import threading
import zlib
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from aiohttp.http_parser import DeflateBuffer
from argon2 import PasswordHasher
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.attempts import AttemptGate, AttemptLimits
from sekisho.callers import RateLimit
from sekisho.config import ClientConfig, TrustConfig
from sekisho.devidp import DevIdentityProvider
from sekisho.errors import InvalidClientError, SlowDownError
from sekisho.http.client_auth import ClientAuthenticator, RegisteredClient
from sekisho.http.secrets import SecretChecker
from sekisho.rpc.stream_bound import MAX_OPEN_PER_PEER
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore
from sekisho.verify.replay import InMemoryReplayCache

from tests.bounds import attempt_limits
from tests.fakes.clock import FakeClock
from tests.fakes.hasher import CountingHasher
from tests.grpc_errors import error_info
from tests.integration.conftest import dev_idp, stack_settings  # noqa: F401 (fixture)
from tests.loopback import closed_within

SECRET = "a-client-secret-for-tests"
LOOSE = attempt_limits(
    max_concurrent=1000,
    max_concurrent_per_peer=1000,
    rate=RateLimit(1e6, 1_000_000),
    rate_per_peer=RateLimit(1e6, 1_000_000),
)

# --- the attempt gate (fake clock) ---------------------------------------------------------------


def test_per_peer_concurrency_is_bounded_before_anything_else() -> None:
    limits = attempt_limits(
        max_concurrent_per_peer=2,
        rate=RateLimit(100.0, 100),
        rate_per_peer=RateLimit(100.0, 100),
    )
    gate = AttemptGate(FakeClock(), limits)
    with gate.attempt("10.0.0.1"), gate.attempt("10.0.0.1"):
        with pytest.raises(SlowDownError) as raised, gate.attempt("10.0.0.1"):
            pass
        # The audit line's detail says who was refused (no caller is known yet), the answer not.
        assert raised.value.log_detail.endswith("from this peer (peer 10.0.0.1)")
        assert "10.0.0.1" not in raised.value.public_message
        with gate.attempt("10.0.0.2"):  # another peer is not affected
            pass
    with gate.attempt("10.0.0.1"):  # slots come back
        pass


def test_global_concurrency_is_bounded_across_peers() -> None:
    gate = AttemptGate(FakeClock(), attempt_limits(max_concurrent=3, max_concurrent_per_peer=3))
    with contextlib.ExitStack() as stack:
        for peer in ("a", "b", "c"):
            stack.enter_context(gate.attempt(peer))
        with pytest.raises(SlowDownError), gate.attempt("d"):
            pass


@pytest.mark.parametrize(
    ("limits", "peers"),
    [
        pytest.param(
            attempt_limits(rate_per_peer=RateLimit(1.0, 2), rate=RateLimit(100.0, 100)),
            ["p", "p"],
            id="per-peer",
        ),
        pytest.param(
            attempt_limits(rate_per_peer=RateLimit(100.0, 100), rate=RateLimit(1.0, 2)),
            ["p", "q"],
            id="global",
        ),
    ],
)
def test_attempts_per_second_are_bounded(limits: AttemptLimits, peers: list[str]) -> None:
    clock = FakeClock()
    gate = AttemptGate(clock, limits)
    for peer in peers:
        with gate.attempt(peer):
            pass
    with pytest.raises(SlowDownError) as raised, gate.attempt("p"):
        pass
    assert raised.value.metadata["retry_after"] == "1"
    assert raised.value.log_detail.endswith("exceeded (peer p)")
    clock.advance(1.0)
    with gate.attempt("p"):
        pass


# --- client-secret checks -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def checker() -> Iterator[SecretChecker]:
    checker = SecretChecker(1)
    yield checker
    checker.close()


def _authenticator(
    checker: SecretChecker, limits: AttemptLimits = LOOSE, tarpit: float = 0.0
) -> ClientAuthenticator:
    secret_hash = PasswordHasher().hash(SECRET)
    return ClientAuthenticator(
        {"known": RegisteredClient("known", secret_hash)},
        audiences=frozenset({"https://sekisho.test"}),
        replay_cache=InMemoryReplayCache(),
        gate=AttemptGate(FakeClock(), limits),
        assertion_gate=AttemptGate(FakeClock(), LOOSE),
        secrets=checker,
        leeway_seconds=TrustConfig().leeway_seconds,
        tarpit_seconds=tarpit,
    )


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def test_secret_checks_run_off_the_event_loop_within_the_pool_bound() -> None:
    """Where each argon2id check runs, not how long the loop lagged: none on the event loop's
    thread (a 64 MiB check there stalls every caller), never more at once than the pool."""
    hasher = CountingHasher()
    checker = SecretChecker(2, hasher=hasher)
    try:
        authenticator = _authenticator(checker)
        attempts = [
            authenticator.authenticate(_basic("known", f"wrong-{i}"), {}, 0.0, peer="p")
            for i in range(6)
        ]
        results = await asyncio.gather(*attempts, return_exceptions=True)
    finally:
        checker.close()
    assert all(isinstance(result, InvalidClientError) for result in results)
    assert len(hasher.threads) == 6 + 1  # the six logins and the seed's check
    assert threading.get_ident() not in hasher.threads
    assert hasher.most_at_once <= 2


async def _answered_after(pause: float, call: Awaitable[object]) -> bool:
    """Whether `call` ended (answer or error) after a loop timer of `pause` seconds set just
    before it fired: event order on the loop's own timers, whatever the machine's load."""
    timer = asyncio.Event()
    asyncio.get_running_loop().call_later(pause, timer.set)
    with contextlib.suppress(Exception):
        await call
    return timer.is_set()


async def test_unknown_ids_cost_no_hash_but_as_much_time() -> None:
    hasher = CountingHasher()
    checker = SecretChecker(1, hasher=hasher)
    try:
        typical = checker.typical_seconds  # seeds it: one check
        attempt = _authenticator(checker).authenticate(_basic("nobody", SECRET), {}, 0.0, peer="p")
        # Answered no sooner than a real check, yet no argon2 check beyond the seed's.
        assert await _answered_after(typical, _raises(InvalidClientError, attempt))
        assert len(hasher.threads) == 1
    finally:
        checker.close()


async def test_known_client_with_the_right_secret_is_authenticated(checker: SecretChecker) -> None:
    caller = await _authenticator(checker).authenticate(_basic("known", SECRET), {}, 0.0, peer="p")
    assert (caller.id, caller.authenticated_by) == ("known", "client_secret")


async def test_a_flood_is_refused_before_hashing(checker: SecretChecker) -> None:
    """Only two logins reach a (decoy) check; the rest are refused at once, before a loop timer
    as long as one check fires: event order on the loop's timers, not elapsed time."""
    limits = attempt_limits(max_concurrent_per_peer=2, rate_per_peer=RateLimit(1000.0, 1000))
    authenticator = _authenticator(checker, limits)
    one_check = asyncio.Event()
    asyncio.get_running_loop().call_later(checker.typical_seconds, one_check.set)
    refused_late: list[bool] = []

    async def login(i: int) -> None:
        try:
            await authenticator.authenticate(_basic(f"made-up-{i}", "x"), {}, 0.0, peer="attacker")
        except SlowDownError:
            refused_late.append(one_check.is_set())

    results = await asyncio.gather(*(login(i) for i in range(20)), return_exceptions=True)
    assert sum(isinstance(r, InvalidClientError) for r in results) == 2
    assert refused_late == [False] * 18


async def test_a_refused_login_is_answered_after_the_tarpit(checker: SecretChecker) -> None:
    """A flood in a closed loop waits for each 429: one login per pause per connection."""
    limits = attempt_limits(max_concurrent_per_peer=1, rate_per_peer=RateLimit(0.001, 1))
    authenticator = _authenticator(checker, limits, tarpit=0.3)
    with pytest.raises(InvalidClientError):  # the burst of one: a (decoy) check
        await authenticator.authenticate(_basic("made-up", "x"), {}, 0.0, peer="attacker")
    refused = authenticator.authenticate(_basic("made-up", "x"), {}, 0.0, peer="attacker")
    assert await _answered_after(0.3, _raises(SlowDownError, refused))


async def _raises(kind: type[Exception], call: Awaitable[object]) -> None:
    with pytest.raises(kind):
        await call


# --- the HTTP listener --------------------------------------------------------------------------

# Only stops a test whose connection is never closed or answered (30 s, not 10 s: stalls of
# seconds on a loaded host); PATIENT_HEADER_TIMEOUT is longer, so a connection closed before
# it was closed by something else.
GIVE_UP_SECONDS = 30.0
PATIENT_HEADER_TIMEOUT = 60.0


async def _guarded_service(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
    header_timeout: float,
) -> Service:
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer,
        keys,
        http={
            "header_timeout_seconds": header_timeout,
            "body_timeout_seconds": 0.5,
            "keepalive_timeout_seconds": 60.0,
            "max_connections": 40,
            "max_connections_per_peer": 30,
            "max_requests_per_connection": 2,
        },
        grpc={"max_concurrent_streams": 1},
        metrics={"listen": "127.0.0.1:0"},
        token_endpoint={
            "clients": (ClientConfig(id="gateway", secret_hash=PasswordHasher().hash(SECRET)),)
        },
    )
    return await start_service(settings)


@pytest.fixture
async def guarded(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Service]:  # noqa: F811
    service = await _guarded_service(tmp_path, dev_idp, header_timeout=0.5)
    yield service
    await service.stop(0.5)


@pytest.fixture
async def metered(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Service]:  # noqa: F811
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys, metrics={"listen": "127.0.0.1:0"})
    service = await start_service(settings)
    yield service
    await service.stop(0.5)


@pytest.fixture
async def patient(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Service]:  # noqa: F811
    """The same bounds with a header timeout no test outlasts: a connection it closes was closed
    by a bound, never by the timer (however slowly a loaded machine opens the connections)."""
    service = await _guarded_service(tmp_path, dev_idp, header_timeout=PATIENT_HEADER_TIMEOUT)
    yield service
    await service.stop(0.5)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _close_all(
    connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
) -> None:
    for _, writer in connections:
        writer.close()
    for _, writer in connections:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _refused(port: int) -> bool:
    """Whether a new connection to `port` is closed by the server before any request: reset
    during the connect (the guard refuses at accept) or closed right after it."""
    try:
        reader, writer = await _connect(port)
    except ConnectionError:
        return True
    try:
        return await closed_within(reader, GIVE_UP_SECONDS)
    finally:
        await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_half_sent_request_headers_are_closed_by_the_header_timeout(
    guarded: Service,
) -> None:
    reader, writer = await _connect(guarded.http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: sekisho\r\n")  # no blank line: never finished
    assert await closed_within(reader, GIVE_UP_SECONDS)
    assert guarded.http_guard is not None and guarded.http_guard.timed_out == 1  # by the timer
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_a_silent_connection_is_closed_by_the_header_timeout(guarded: Service) -> None:
    reader, writer = await _connect(guarded.http_port)
    assert await closed_within(reader, GIVE_UP_SECONDS)
    assert guarded.http_guard is not None and guarded.http_guard.timed_out == 1  # by the timer
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_slow_headers_on_a_kept_alive_connection_are_closed(guarded: Service) -> None:
    reader, writer = await _connect(guarded.http_port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: sekisho\r\n\r\n")
    assert b"200" in await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    writer.write(b"GET /healthz HTTP/1.1\r\n")  # the next request, half sent
    assert await closed_within(reader, GIVE_UP_SECONDS)
    assert guarded.http_guard is not None and guarded.http_guard.timed_out == 1  # by the timer
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_a_slow_body_is_cut_off_by_the_body_timeout(guarded: Service) -> None:
    reader, writer = await _connect(guarded.http_port)
    writer.write(
        b"POST /oauth2/token HTTP/1.1\r\nHost: sekisho\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nabc"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    assert head.startswith(b"HTTP/1.1 408")
    assert b"content-type: application/json" in head.lower()  # RFC 6749 §5.2 invalid_request
    assert await closed_within(reader, GIVE_UP_SECONDS)
    await _close_all([(reader, writer)])


def _gzip(data: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return packer.compress(data) + packer.flush()


@pytest.fixture
def inflations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes handed to aiohttp's body decompressor (both parsers use http_parser.DeflateBuffer)."""
    fed: list[int] = []
    feed = DeflateBuffer.feed_data

    def counting(self: DeflateBuffer, chunk: bytes, *args: Any) -> None:
        fed.append(len(chunk))
        feed(self, chunk, *args)

    monkeypatch.setattr(DeflateBuffer, "feed_data", counting)
    return fed


# 64 MiB of form that gzip packs into ~64 KB: inflated, it cost 0.14-0.18 s of event-loop CPU per
# request before the guard refused content codings (bench/results/redteam_session10.md).
_BOMB = _gzip(b"grant_type=x&audience=" + b"A" * (64 << 20))


def _post(path: str, body: bytes, coding: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: sekisho\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Encoding: {coding}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


@pytest.mark.integration
@pytest.mark.parametrize("coding", ["gzip", "GZip", "deflate", "br", "identity, gzip"])
async def test_a_compressed_body_is_refused_without_being_inflated(
    patient: Service, inflations: list[int], coding: str
) -> None:
    # `patient`: the connection's close below is the refusal's, never the header timer's.
    reader, writer = await _connect(patient.http_port)
    writer.write(_post("/oauth2/token", _BOMB, coding))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    assert head.startswith(b"HTTP/1.1 415")
    assert b"accept-encoding: identity" in head.lower()
    assert b"content-type: application/json" in head.lower()  # RFC 6749 §5.2 invalid_request
    assert await closed_within(reader, GIVE_UP_SECONDS)
    assert inflations == []  # not one byte reached the decompressor
    assert patient.http_guard is not None and patient.http_guard.encoded_refused == 1
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_an_identity_coded_body_is_read_as_usual(
    patient: Service, inflations: list[int]
) -> None:
    reader, writer = await _connect(patient.http_port)
    writer.write(_post("/oauth2/token", b"grant_type=x", "identity"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    assert head.startswith((b"HTTP/1.1 400", b"HTTP/1.1 401"))  # the endpoint's own answer
    assert patient.http_guard is not None and patient.http_guard.encoded_refused == 0
    await _close_all([(reader, writer)])


@pytest.mark.integration
@pytest.mark.parametrize(
    "coding", ["gzip, chunked", "GZip, chunked", "deflate,chunked", "x-made-up, chunked"]
)
async def test_a_transfer_coding_other_than_chunked_is_refused_naming_the_header(
    patient: Service, coding: str
) -> None:
    """Red team session 20, finding 5: aiohttp undoes the chunked framing only, so a plain form
    sent with `Transfer-Encoding: gzip, chunked` was exchanged as if uncoded (200), where a proxy
    applying the coding reads another body. RFC 9112 §6.1 says 501; the contract's refusals are
    invalid_request, so 400 with the RFC 6749 §5.2 body naming the header, connection closed."""
    form = b"grant_type=x"
    reader, writer = await _connect(patient.http_port)
    writer.write(
        (
            "POST /oauth2/token HTTP/1.1\r\nHost: sekisho\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Transfer-Encoding: {coding}\r\n\r\n"
        ).encode()
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(form), form)
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    assert head.startswith(b"HTTP/1.1 400")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = json.loads(await asyncio.wait_for(reader.readexactly(length), GIVE_UP_SECONDS))
    assert body["error"] == "invalid_request"
    assert "Transfer-Encoding" in body["error_description"]
    assert await closed_within(reader, GIVE_UP_SECONDS)
    assert patient.http_guard is not None and patient.http_guard.transfer_coded_refused == 1
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_a_chunked_body_is_read_as_usual(patient: Service) -> None:
    reader, writer = await _connect(patient.http_port)
    writer.write(
        b"POST /oauth2/token HTTP/1.1\r\nHost: sekisho\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\nc\r\ngrant_type=x\r\n0\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    assert head.startswith((b"HTTP/1.1 400", b"HTTP/1.1 401"))  # the endpoint's own answer
    assert patient.http_guard is not None and patient.http_guard.transfer_coded_refused == 0
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_made_up_form_charsets_leave_nothing_behind(patient: Service) -> None:
    """Red team session 18: the token endpoint's charset check handed the caller's charset to
    codecs.lookup, whose `encodings` search function keeps each name it cannot find for good
    (encodings._cache, never emptied): one entry per made-up name, up to aiohttp's 8 KiB
    header line, for anyone, before client authentication. Each request is refused the same;
    none may leave a name behind."""
    before = len(encodings._cache)
    for n in range(20):
        charset = f"x-made-up-{n}-" + "a" * 4000
        head = (
            f"POST /oauth2/token HTTP/1.1\r\nHost: sekisho\r\nConnection: close\r\n"
            f"Content-Type: application/x-www-form-urlencoded; charset={charset}\r\n"
            "Content-Length: 12\r\n\r\ngrant_type=x"
        )
        reader, writer = await _connect(patient.http_port)
        writer.write(head.encode())
        answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
        assert answer.startswith(b"HTTP/1.1 400"), answer
        await _close_all([(reader, writer)])
    assert len(encodings._cache) == before


@pytest.mark.integration
async def test_the_metrics_listener_never_inflates_a_body(
    metered: Service, inflations: list[int]
) -> None:
    reader, writer = await _connect(metered.metrics_port)
    writer.write(_post("/metrics", _BOMB, "gzip"))
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    assert head.startswith(b"HTTP/1.1 415")  # the guard's refusal, as on the public listener
    assert inflations == []  # the parser inflates as bytes arrive, before any handler runs
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_the_metrics_listener_closes_half_sent_headers_too(guarded: Service) -> None:
    # The deployed config binds it to the pod IP (deploy/base/configmap.yaml): reachable by
    # anyone on the cluster network, and aiohttp alone never closes a half-sent request.
    reader, writer = await _connect(guarded.metrics_port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: sekisho\r\n")  # never finished
    assert await closed_within(reader, GIVE_UP_SECONDS)
    await _close_all([(reader, writer)])
    reader, writer = await _connect(guarded.metrics_port)  # and it still serves
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: sekisho\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
    assert head.startswith(b"HTTP/1.1 200")
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_the_metrics_listener_bounds_connections_per_peer(patient: Service) -> None:
    held = [await _connect(patient.metrics_port) for _ in range(30)]
    try:
        assert await _refused(patient.metrics_port)  # the 31st: refused at once
    finally:
        await _close_all(held)


@pytest.mark.integration
async def test_keep_alive_ends_after_max_requests_per_connection(patient: Service) -> None:
    reader, writer = await _connect(patient.http_port)
    heads = []
    for _ in range(2):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: sekisho\r\n\r\n")
        heads.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS))
    assert b"close" not in heads[0].lower() and b"connection: close" in heads[1].lower()
    await _close_all([(reader, writer)])


@pytest.mark.integration
async def test_connections_beyond_the_per_peer_bound_are_closed_at_once(
    patient: Service,
) -> None:
    # With header_timeout = 0.5 s this raced the timer: at load ~11 opening 30 connections took
    # longer than 0.5 s, the timer closed the first ones, and the 31st got a free slot. Here the
    # timer cannot fire during the test, so a closed 31st was closed by the per-peer bound.
    guard = patient.http_guard
    assert guard is not None
    held = [await _connect(patient.http_port) for _ in range(30)]
    try:
        assert await _refused(patient.http_port)  # the 31st: refused, not timed out
        assert (guard.refused, guard.timed_out) == (1, 0)
        assert guard.refused_by_reason["connections_per_peer"] == 1
        reader, writer = held[0]  # the first ones are still open and served
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: sekisho\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GIVE_UP_SECONDS)
        assert head.startswith(b"HTTP/1.1 200")
    finally:
        await _close_all(held)


@pytest.mark.integration
async def test_hundreds_of_half_open_connections_leave_grpc_serving(guarded: Service) -> None:
    connections = []
    try:
        for _ in range(300):
            try:
                reader, writer = await _connect(guarded.http_port)
            except ConnectionError:
                continue  # refused by the guard at accept, before the connect completed
            writer.write(b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\n")
            connections.append((reader, writer))
        assert guarded.http_guard is not None and guarded.http_guard.open <= 40
        async with grpc.aio.insecure_channel(f"127.0.0.1:{guarded.grpc.port}") as channel:
            stub = pb_grpc.TokenExchangeServiceStub(channel)
            assert (await stub.GetJwks(pb.GetJwksRequest(), timeout=GIVE_UP_SECONDS)).jwks
        closed = await asyncio.gather(*(closed_within(r, GIVE_UP_SECONDS) for r, _ in connections))
        assert all(closed)  # the bound refused the excess, the header timeout closed the rest
        assert guarded.http_guard.open == 0
    finally:
        await _close_all(connections)


# --- the gRPC listener --------------------------------------------------------------------------


@pytest.mark.integration
async def test_grpc_streams_per_connection_are_bounded(guarded: Service) -> None:
    """max_concurrent_streams = 1: while a Health.Watch stream is open, a second call on the same
    connection cannot start; on another connection it can."""
    target = f"127.0.0.1:{guarded.grpc.port}"
    async with (
        grpc.aio.insecure_channel(target) as channel,
        # Its own subchannel pool: a separate connection, not the one shared by target.
        grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as other,
    ):
        health = health_pb2_grpc.HealthStub(channel)
        # Its deadline a hang guard too: a watch ended by it would free the stream.
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=GIVE_UP_SECONDS)
        first = await asyncio.wait_for(watch.read(), GIVE_UP_SECONDS)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await pb_grpc.TokenExchangeServiceStub(channel).GetJwks(
                pb.GetJwksRequest(), timeout=0.5
            )
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        other_stub = pb_grpc.TokenExchangeServiceStub(other)
        assert (await other_stub.GetJwks(pb.GetJwksRequest(), timeout=GIVE_UP_SECONDS)).jwks
        watch.cancel()


PUSHY = [
    ("grpc.keepalive_time_ms", 100),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.use_local_subchannel_pool", 1),
]


async def _watch_while_pinging(port: int, seconds: float) -> None:
    """Hold a Health.Watch stream open on a channel pinging every 100 ms until it fails (at the
    latest at its `seconds` deadline). Raises: grpc.aio.AioRpcError, always."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=PUSHY) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=""), timeout=seconds
        )
        while True:
            await asyncio.wait_for(watch.read(), seconds + 5)


@pytest.mark.integration
async def test_a_client_pinging_too_often_is_sent_away(guarded: Service) -> None:
    """Keepalive enforcement: pings closer than min_ping_interval_seconds (10 s) earn strikes;
    after two the server sends GOAWAY (ENHANCE_YOUR_CALM, "too many pings")."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await _watch_while_pinging(guarded.grpc.port, 5.0)
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "too many pings" in (raised.value.details() or "").lower()


@pytest.mark.integration
async def test_min_ping_interval_reaches_grpc(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> None:
    """The setting is what grpc enforces: allowed 10 ms between pings, the same client stays."""
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys, grpc={"min_ping_interval_seconds": 0.01})
    service = await start_service(settings)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _watch_while_pinging(service.grpc.port, 1.5)
    finally:
        await service.stop(0.5)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # no GOAWAY: its own end


@pytest.mark.integration
async def test_a_grpc_connection_that_sends_nothing_is_closed_by_the_handshake_timeout(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> None:
    """[grpc] handshake_timeout_seconds reaches grpc core: a connection that never sends the
    HTTP/2 preface is closed (grpc core's own default would hold it 120 s)."""
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys, grpc={"handshake_timeout_seconds": 1.0})
    service = await start_service(settings)
    try:
        reader, writer = await _connect(service.grpc.port)
        assert await closed_within(reader, GIVE_UP_SECONDS)
        await _close_all([(reader, writer)])
    finally:
        await service.stop(0.5)


class _NeverSent:
    """A client that opens a call (its HEADERS) and never sends the request message."""

    def __aiter__(self) -> "_NeverSent":
        return self

    async def __anext__(self) -> bytes:
        await asyncio.Event().wait()
        raise StopAsyncIteration


# Every method of the listener that takes one request message (reflection takes a stream).
_ONE_MESSAGE_METHODS = [
    ("/sekisho.v1.TokenExchangeService/ExchangeToken", False),
    ("/sekisho.v1.TokenExchangeService/GetJwks", False),
    ("/envoy.service.auth.v3.Authorization/Check", False),
    ("/grpc.health.v1.Health/Check", False),
    ("/grpc.health.v1.Health/Watch", True),
]


async def _never_sent(channel: grpc.aio.Channel, method: str, streaming: bool) -> Any:
    """A call of `method` without a deadline whose message never comes: how it ended."""
    try:
        if streaming:
            return [answer async for answer in channel.stream_stream(method)(_NeverSent())]
        return await channel.stream_unary(method)(_NeverSent())
    except grpc.aio.AioRpcError as error:
        return error


@pytest.mark.integration
async def test_a_grpc_call_whose_message_never_comes_is_not_held_open(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> None:
    """Red team session 19: grpc waits for a call's request message until the client's deadline,
    and a client may set none. A call opened and never sent stayed open for good: 16 per
    connection, connections unbounded per peer, outside the Watch bound (which counts a call once
    its message is in). Now every method taking one message refuses it after [grpc]
    message_timeout_seconds (the HTTP listener's body timeout, for gRPC)."""
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys, grpc={"message_timeout_seconds": 0.5})
    service = await start_service(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}") as channel:
            ended = await asyncio.wait_for(  # a hang guard: unbounded, no call ever ends
                asyncio.gather(*(_never_sent(channel, m, s) for m, s in _ONE_MESSAGE_METHODS)),
                GIVE_UP_SECONDS,
            )
            for (method, _), end in zip(_ONE_MESSAGE_METHODS, ended, strict=True):
                assert isinstance(end, grpc.aio.AioRpcError), method
                assert end.code() == grpc.StatusCode.INVALID_ARGUMENT, method
                assert error_info(end).reason == "invalid_request", method
            # The calls that send their message are served as before.
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="")
            check = await stub.Check(request, timeout=GIVE_UP_SECONDS)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            watch = stub.Watch(request, timeout=GIVE_UP_SECONDS)
            assert (await _first_answer(watch)).status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
            jwks = await pb_grpc.TokenExchangeServiceStub(channel).GetJwks(
                pb.GetJwksRequest(), timeout=GIVE_UP_SECONDS
            )
            assert jwks.jwks
    finally:
        await service.stop(0.5)


# Requests aiohttp's parser refuses: a DEL and a NUL in a header value, a bad chunk size.
_UNPARSEABLE = [
    b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nX-A: \x7f\r\nContent-Length: 0\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


@pytest.mark.integration
async def test_requests_the_parser_refuses_are_counted_not_logged_one_by_one(
    metered: Service, caplog: pytest.LogCaptureFixture
) -> None:
    # Red team session 11: aiohttp logged each one as an ERROR with the parser's traceback
    # (~0.18 ms of the event loop and ~0.5-1 KB of log per unauthenticated request).
    caplog.set_level(logging.DEBUG)
    for port in (metered.http_port, metered.metrics_port):
        for request in _UNPARSEABLE * 10:
            reader, writer = await _connect(port)
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n"), GIVE_UP_SECONDS)
            assert head.startswith(b"HTTP/1.0 400") or head.startswith(b"HTTP/1.1 400")
            await _close_all([(reader, writer)])
    aiohttp_lines = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert aiohttp_lines == []  # no ERROR traceback per request
    counted = [r for r in caplog.records if r.getMessage() == "http_bad_requests"]
    assert counted and all(r.levelno == logging.WARNING and not r.exc_info for r in counted)
    assert len(counted) < 2 * len(_UNPARSEABLE) * 10  # one line per interval, not per request


async def _list_services(stream: Any) -> Any:
    """Ask a reflection stream to list services; its first answer. A stream refused as it opens
    raises from the write or from the read, whichever the refusal reaches first (a race)."""
    await stream.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    return await _first_answer(stream)


async def _first_answer(call: Any) -> Any:
    return await asyncio.wait_for(call.read(), GIVE_UP_SECONDS)


@pytest.mark.integration
async def test_open_watch_and_reflection_streams_are_bounded_per_peer(metered: Service) -> None:
    """Red team, session 13: Health.Watch and reflection streams stay open until the client ends
    them (~24 KB of the worker each) and grpc core bounds streams per connection, not
    connections: one client held as many as it opened. Now MAX_OPEN_PER_PEER per address."""
    target = f"127.0.0.1:{metered.grpc.port}"
    own_connection = [("grpc.use_local_subchannel_pool", 1)]
    per_channel = 16  # [grpc] max_concurrent_streams
    channels = [
        grpc.aio.insecure_channel(target, options=own_connection)
        for _ in range(MAX_OPEN_PER_PEER // per_channel + 1)
    ]
    request = health_pb2.HealthCheckRequest(service="")
    try:
        watches = [
            health_pb2_grpc.HealthStub(channels[i // per_channel]).Watch(request)
            for i in range(MAX_OPEN_PER_PEER)
        ]
        answers = await asyncio.gather(*(_first_answer(watch) for watch in watches))
        assert {answer.status for answer in answers} == {health_pb2.HealthCheckResponse.SERVING}
        extra = health_pb2_grpc.HealthStub(channels[-1]).Watch(request)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _first_answer(extra)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # before: SERVING
        assert error_info(refused.value).reason == SlowDownError.reason  # the contract's refusal
        reflection = reflection_pb2_grpc.ServerReflectionStub(channels[-1])
        stream = reflection.ServerReflectionInfo()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _list_services(stream)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        watches.pop().cancel()  # one ends: its place is free again
        for _ in range(int(GIVE_UP_SECONDS / 0.05)):
            again = health_pb2_grpc.HealthStub(channels[-1]).Watch(request)
            try:
                assert (await _first_answer(again)).status == health_pb2.HealthCheckResponse.SERVING
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("a Watch was refused after one ended")
        # The unary Check (probes, Envoy) is never bounded by it.
        check = await health_pb2_grpc.HealthStub(channels[-1]).Check(
            request, timeout=GIVE_UP_SECONDS
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        for channel in channels:
            await channel.close()
