"""A signed Status List Token is reused for `rebuild_seconds` of the injected clock (STYLE.md: no
wall or monotonic time read inside), then rebuilt from the store, so a revocation shows; a clock
set back rebuilds at once instead of serving the old list until the clock catches up."""

import asyncio
import base64
import json
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sekisho.http.statuslist import StatusListEndpoint
from sekisho.log_throttle import SUMMARY_INTERVAL
from sekisho.signing.filestore import FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.status.filestore import FileStatusStore
from sekisho.status.listtoken import (
    LIVE_LISTS_REFRESH_SECONDS,
    MAX_UNKNOWN_STORE_READS,
    ListTiming,
    StatusListTokens,
    StatusReadsSaturatedError,
)
from sekisho.status.models import ListSnapshot
from sekisho.status.store import StatusStoreError

from tests.fakes.clock import FakeClock
from tests.unit.status.test_store_contract import NOW


class _OneList(FileStatusStore):
    """A store whose list 1 has the INVALID indexes the test sets."""

    invalid: frozenset[int] = frozenset()

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        return ListSnapshot(list_id, 16, self.invalid) if list_id == 1 else None


def _tokens(tmp_path: Path, clock: FakeClock, store: FileStatusStore) -> StatusListTokens:
    keystore = FileKeyStore(tmp_path / "keys")
    keystore.init("ES256", NOW)
    keyring = Keyring(keystore)
    keyring.load()
    timing = ListTiming(ttl_seconds=300, lifetime_seconds=600, rebuild_seconds=10)
    return StatusListTokens(
        store, keyring, clock, issuer="https://s", base_uri="https://s/lists", bits=1, timing=timing
    )


def _claims(token: str | None) -> dict[str, object]:
    assert token is not None
    payload = token.split(".")[1]
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


async def test_a_list_is_rebuilt_after_rebuild_seconds_of_the_injected_clock(
    tmp_path: Path,
) -> None:
    clock = FakeClock(NOW)
    store = _OneList(tmp_path / "status.db")
    tokens = _tokens(tmp_path, clock, store)
    first = await tokens.token(1)
    store.invalid = frozenset({3})  # revoked after the list was signed
    clock.advance(9)
    assert await tokens.token(1) == first  # still within rebuild_seconds: reused
    clock.advance(1)
    rebuilt = _claims(await tokens.token(1))
    assert rebuilt["iat"] == NOW + 10
    assert rebuilt["status_list"] != _claims(first)["status_list"]  # the revocation shows
    store.close()


async def test_a_clock_set_back_rebuilds_the_list(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    store = _OneList(tmp_path / "status.db")
    tokens = _tokens(tmp_path, clock, store)
    first = await tokens.token(1)
    store.invalid = frozenset({3})
    clock.advance(-120)
    rebuilt = _claims(await tokens.token(1))
    assert rebuilt["iat"] == NOW - 120
    assert rebuilt["status_list"] != _claims(first)["status_list"]
    store.close()


class _Held(_OneList):
    """Every read waits until the test lets it go (a store across a slow network, or stalled),
    counting the reads and the most in flight at once."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.release = threading.Event()
        self.reads = 0
        self.most = 0
        self._in_flight = 0
        self._lock = threading.Lock()

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        with self._lock:
            self.reads += 1
            self._in_flight += 1
            self.most = max(self.most, self._in_flight)
        self.release.wait(GIVE_UP_SECONDS)
        with self._lock:
            self._in_flight -= 1
        return super().snapshot(list_id)


GIVE_UP_SECONDS = 10.0


async def _turns() -> None:
    for _ in range(100):  # loop turns until every request has got as far as it can
        await asyncio.sleep(0)


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for `condition`: a store read in a thread takes turns of its own to come back."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    pytest.fail("never came to pass")


async def test_reads_for_made_up_ids_leave_the_thread_pool_to_the_revocation_gate(
    tmp_path: Path,
) -> None:
    # 50 anonymous GETs of lists that do not exist, behind a store that answers slowly: each read
    # held a default-pool thread (at most 32), and the revocation gate's refresh, which reads the
    # store in the same pool, queued behind them until its view went stale.
    store = _Held(tmp_path / "status.db")
    tokens = _tokens(tmp_path, FakeClock(NOW), store)
    flood = [asyncio.ensure_future(tokens.token(1000 + i)) for i in range(50)]
    try:
        # Every request has got as far as it can: past the live lists' read they share.
        await _until(lambda: sum(task.done() for task in flood) >= 50 - MAX_UNKNOWN_STORE_READS)
        await _turns()
        refused = [task for task in flood if task.done()]
        assert len(refused) == 50 - MAX_UNKNOWN_STORE_READS
        assert all(isinstance(task.exception(), StatusReadsSaturatedError) for task in refused)
        gate_refresh = asyncio.to_thread(lambda: "read")  # what RevocationGate.refresh does
        assert await asyncio.wait_for(gate_refresh, GIVE_UP_SECONDS) == "read"
    finally:
        store.release.set()
        await asyncio.gather(*flood, return_exceptions=True)
    assert store.most == MAX_UNKNOWN_STORE_READS
    store.close()


class _HeldLive(_Held):
    """As _Held, with the lists in `live` among the store's live lists (read at once)."""

    def __init__(self, path: Path, live: set[int]) -> None:
        super().__init__(path)
        self.live = live
        self.live_reads = 0

    def live_lists(self, now: int) -> list[int]:
        self.live_reads += 1
        return sorted(self.live)

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        super().snapshot(list_id)  # held and counted
        return ListSnapshot(list_id, 16, frozenset()) if list_id in self.live else None


async def test_a_flood_of_made_up_ids_leaves_a_live_list_its_own_reads(tmp_path: Path) -> None:
    """Red team session 14: made-up ids and real lists shared MAX_STORE_READS places, so during
    a flood 4-7 of 10 downstream fetches of a real list were answered 503. A live list (here
    named by the store's live lists) now reads in places of its own."""
    store = _HeldLive(tmp_path / "status.db", live={1})
    tokens = _tokens(tmp_path, FakeClock(NOW), store)
    flood = [asyncio.ensure_future(tokens.token(1000 + i)) for i in range(50)]
    await _turns()
    real = asyncio.ensure_future(tokens.token(1))
    try:
        await _until(lambda: sum(task.done() for task in flood) == 50 - MAX_UNKNOWN_STORE_READS)
        await _turns()
        assert not real.done()  # reading, not refused
    finally:
        store.release.set()
        await asyncio.gather(*flood, return_exceptions=True)
    assert _claims(await real)["sub"] == "https://s/lists/1"
    assert store.live_reads == 1  # the flood read the live lists once, not once per id
    store.close()


async def test_a_list_leased_after_the_live_lists_were_read_is_known_a_second_later(
    tmp_path: Path,
) -> None:
    store = _HeldLive(tmp_path / "status.db", live=set())
    store.release.set()
    clock = FakeClock(NOW)
    tokens = _tokens(tmp_path, clock, store)
    assert await tokens.token(1000) is None  # made up: the live lists are read, then the id
    store.live.add(1)  # leased by another replica just after
    store.release.clear()
    unknown = asyncio.ensure_future(tokens.token(1))
    await _turns()
    flood = asyncio.ensure_future(tokens.token(1001))
    await _turns()
    assert flood.done() and isinstance(flood.exception(), StatusReadsSaturatedError)
    store.release.set()
    assert await unknown is not None  # read as an unknown id meanwhile: served, not a 404
    assert store.live_reads == 1

    clock.advance(LIVE_LISTS_REFRESH_SECONDS)
    store.live.add(2)
    assert await tokens.token(2000) is None  # a second later an unknown id reads them again
    assert store.live_reads == 2
    store.release.clear()
    made_up = [asyncio.ensure_future(tokens.token(2001 + i)) for i in range(10)]
    await _turns()
    real = asyncio.ensure_future(tokens.token(2))  # never built here: known by the live lists
    await _turns()
    assert not real.done()  # reading in a live list's place, not refused with the made-up ids
    assert sum(task.done() for task in made_up) == 10 - MAX_UNKNOWN_STORE_READS
    store.release.set()
    await asyncio.gather(*made_up, return_exceptions=True)
    assert await real is not None
    store.close()


async def test_the_list_of_lists_reads_the_store_at_most_once_a_second(tmp_path: Path) -> None:
    """`GET /statuslists` is unauthenticated too: each request read the store's live lists."""
    store = _HeldLive(tmp_path / "status.db", live={1, 2})
    store.release.set()
    clock = FakeClock(NOW)
    tokens = _tokens(tmp_path, clock, store)
    for _ in range(50):
        assert await tokens.live_uris() == ["https://s/lists/1", "https://s/lists/2"]
    assert store.live_reads == 1
    store.live.add(3)
    clock.advance(LIVE_LISTS_REFRESH_SECONDS)
    assert (await tokens.live_uris())[-1] == "https://s/lists/3"
    assert store.live_reads == 2
    store.close()


async def test_concurrent_requests_for_one_list_share_one_read_and_one_signature(
    tmp_path: Path,
) -> None:
    store = _Held(tmp_path / "status.db")
    tokens = _tokens(tmp_path, FakeClock(NOW), store)
    herd = [asyncio.ensure_future(tokens.token(1)) for _ in range(20)]
    for _ in range(100):  # every request has joined before the read returns
        await asyncio.sleep(0)
    store.release.set()
    served = await asyncio.gather(*herd)
    assert store.reads == 1
    assert len(set(served)) == 1 and served[0] is not None
    store.close()


class _Down(FileStatusStore):
    """A store that cannot be reached (Redis down: connection refused at once)."""

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        raise StatusStoreError("status store unreachable: Error 111 connecting to redis:6379")

    def live_lists(self, now: int) -> list[int]:
        raise StatusStoreError("status store unreachable: Error 111 connecting to redis:6379")


async def test_anonymous_reads_while_the_store_is_down_are_counted_not_logged_one_by_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Session 12: each anonymous GET of a list (or of the aggregation document) while the store
    # was unreachable wrote one WARNING `status_list_unavailable` line (~29 us to format and
    # scrub, 250 bytes): a flood of cheap requests during an outage became a flood of WARNINGs.
    clock = FakeClock(NOW)
    endpoint = StatusListEndpoint(_tokens(tmp_path, clock, _Down(tmp_path / "s.db")), clock)
    app = web.Application()
    endpoint.add_routes(app, "")
    caplog.set_level(logging.WARNING, logger="sekisho.http.statuslist")
    async with TestClient(TestServer(app)) as client:
        for i in range(40):
            answer = await client.get(f"/statuslists/{i}" if i % 2 else "/statuslists")
            assert answer.status == 503
        clock.advance(SUMMARY_INTERVAL)
        assert (await client.get("/statuslists/1")).status == 503
    lines = [r for r in caplog.records if r.getMessage() == "status_list_unavailable"]
    assert [line.unavailable for line in lines] == [1, 40]  # type: ignore[attr-defined]
    assert "Error 111" in lines[-1].last  # type: ignore[attr-defined]
