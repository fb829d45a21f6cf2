"""ConnectionGuard.admit: the bounds a new HTTP connection passes before any TLS work, on a fake
clock (the listener that calls it: tests/security/test_connection_admission.py)."""

import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict
from sekisho.callers import RateLimit
from sekisho.http.guard import ConnectionGuard, ConnectionLimits
from sekisho.log_throttle import SUMMARY_INTERVAL

from tests.fakes.clock import FakeClock

LOOSE = RateLimit(1e6, 1_000_000)


def _guard(
    clock: FakeClock,
    *,
    per_peer: RateLimit = LOOSE,
    total: RateLimit = LOOSE,
    max_connections: int = 100,
    max_connections_per_peer: int = 100,
    max_handshakes: int = 100,
) -> ConnectionGuard:
    limits = ConnectionLimits(
        header_timeout=10.0,
        body_timeout=10.0,
        keepalive_timeout=15.0,
        max_requests_per_connection=0,
        max_connections=max_connections,
        max_connections_per_peer=max_connections_per_peer,
        new_connections=total,
        new_connections_per_peer=per_peer,
        max_handshakes=max_handshakes,
        handshake_timeout=10.0,
    )
    return ConnectionGuard(limits, clock)


def _admits(guard: ConnectionGuard, peer: str, *, tls: bool = True) -> bool:
    """Admit one TLS connection from `peer` and close it at once (only the rates can refuse)."""
    connection = guard.admit(peer, tls=tls)
    if connection is None:
        return False
    if tls:
        guard.handshake_finished(ok=True)
    guard.closed(connection)
    return True


def test_a_peer_gets_its_burst_then_one_connection_per_refill() -> None:
    clock = FakeClock()
    guard = _guard(clock, per_peer=RateLimit(2.0, 3))
    assert [_admits(guard, "10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert _admits(guard, "10.0.0.2")  # another peer has its own bucket
    clock.advance(0.5)  # one token at 2/s
    assert [_admits(guard, "10.0.0.1") for _ in range(2)] == [True, False]
    assert guard.refused_by_reason["rate_per_peer"] == 2


def test_plain_tcp_connections_are_not_rate_bounded() -> None:
    """The rates bound handshakes (~1.6 ms each); a plain accept costs what a reset does, and a
    TLS-terminating sidecar sends every client's connection from its one address."""
    clock = FakeClock()
    guard = _guard(clock, per_peer=RateLimit(1e-6, 1), total=RateLimit(1e-6, 1))
    assert all(_admits(guard, "127.0.0.1", tls=False) for _ in range(10))
    assert guard.refused == 0
    assert _admits(guard, "127.0.0.1")  # TLS: its burst of one,
    assert not _admits(guard, "127.0.0.1")  # then refused


def test_the_total_rate_applies_across_peers() -> None:
    clock = FakeClock()
    guard = _guard(clock, total=RateLimit(1.0, 2))
    assert [_admits(guard, f"10.0.0.{n}") for n in range(1, 5)] == [True, True, False, False]
    clock.advance(1.0)
    assert _admits(guard, "10.0.0.9")
    assert guard.refused_by_reason["rate"] == 2


def test_a_connection_refused_by_a_bound_takes_no_token() -> None:
    """A peer at its open-connection bound is refused without spending its rate: once it
    closes one, it may open another."""
    clock = FakeClock()
    guard = _guard(clock, per_peer=RateLimit(1e-6, 2), max_connections_per_peer=1)
    held = guard.admit("10.0.0.1", tls=True)
    assert held is not None
    guard.handshake_finished(ok=True)
    assert all(guard.admit("10.0.0.1", tls=True) is None for _ in range(5))
    assert guard.refused_by_reason["connections_per_peer"] == 5
    guard.closed(held)
    assert _admits(guard, "10.0.0.1")  # the second token
    assert not _admits(guard, "10.0.0.1")  # and no third: the 5 refusals took none
    assert guard.refused_by_reason["rate_per_peer"] == 1


def test_handshakes_in_progress_are_bounded_and_counted() -> None:
    guard = _guard(FakeClock(), max_handshakes=2)
    first, second = guard.admit("10.0.0.1", tls=True), guard.admit("10.0.0.2", tls=True)
    assert first is not None and second is not None
    assert guard.admit("10.0.0.3", tls=True) is None
    assert guard.admit("10.0.0.3", tls=False) is not None  # plain TCP has no handshake
    guard.handshake_finished(ok=False)  # the first one's handshake failed
    guard.closed(first)
    assert guard.admit("10.0.0.3", tls=True) is not None
    assert (guard.handshaking, guard.handshakes_started, guard.handshakes_failed) == (2, 3, 1)
    assert guard.refused_by_reason["handshakes"] == 1


def test_a_connection_is_released_once_however_often_it_is_closed() -> None:
    guard = _guard(FakeClock(), max_connections=1)
    connection = guard.admit("10.0.0.1", tls=False)
    assert connection is not None
    guard.closed(connection)
    guard.closed(connection)  # the protocol's connection_lost after the listener's release
    assert guard.open == 0
    assert guard.admit("10.0.0.1", tls=False) is not None
    assert guard.admit("10.0.0.2", tls=False) is None  # max_connections = 1 still holds


def test_refusals_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    guard = _guard(clock, per_peer=RateLimit(1e-6, 1))
    caplog.set_level(logging.WARNING, logger="sekisho.http.refusals")
    _admits(guard, "10.0.0.1")
    for _ in range(5):
        _admits(guard, "10.0.0.1")
    _admits(guard, "10.0.0.2")  # its first connection is admitted
    _admits(guard, "10.0.0.2")
    clock.advance(SUMMARY_INTERVAL)
    _admits(guard, "10.0.0.1")
    lines = [r for r in caplog.records if r.getMessage() == "http_connections_refused"]
    assert [r.refused for r in lines] == [{"rate_per_peer": 1}, {"rate_per_peer": 6}]
    # Who was refused, most refused first.
    assert [r.peers for r in lines] == [{"10.0.0.1": 1}, {"10.0.0.1": 5, "10.0.0.2": 1}]
    assert guard.refused == 7


@pytest.mark.parametrize(
    "codings",
    [
        ["chunked, chunked"],
        ["Chunked,\tchunked"],
        ["chunked", "chunked"],  # the same in two fields
        ["chunked,", "chunked"],
    ],
)
async def test_chunked_applied_twice_is_refused_as_a_coding_not_undone(codings: list[str]) -> None:
    """Red team session 20, second pass: the Transfer-Encoding refusal let any number of
    `chunked` codings through. aiohttp removes one framing only; with its pure-Python parser
    (no C extension, or AIOHTTP_NO_EXTENSIONS) `chunked, chunked` reached the endpoint with the
    inner framing read as the form, where a proxy applying both codings reads another body
    (RFC 9112 §6.1: a sender MUST NOT apply chunked more than once). Its C parser refuses it."""
    headers = CIMultiDict([("Content-Type", "application/x-www-form-urlencoded")])
    for value in codings:
        headers.add("Transfer-Encoding", value)
    reached: list[web.Request] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        reached.append(request)
        return web.Response()

    guard = _guard(FakeClock())
    response = await guard.middleware()(
        make_mocked_request("POST", "/oauth2/token", headers=headers), handler
    )
    assert response.status == 400
    assert reached == []
    assert guard.transfer_coded_refused == 1


@pytest.mark.parametrize("codings", [["chunked"], ["Chunked"], [" chunked ,"], [",", "chunked"]])
async def test_chunked_once_is_read_as_usual(codings: list[str]) -> None:
    headers = CIMultiDict([("Content-Type", "application/x-www-form-urlencoded")])
    for value in codings:
        headers.add("Transfer-Encoding", value)
    reached: list[web.Request] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        reached.append(request)
        return web.Response()

    guard = _guard(FakeClock())
    response = await guard.middleware()(
        make_mocked_request("POST", "/oauth2/token", headers=headers), handler
    )
    assert response.status == 200
    assert len(reached) == 1
    assert guard.transfer_coded_refused == 0
