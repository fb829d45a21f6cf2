"""The one LRU map, single-flight and backoff every cache, fetcher and retry loop uses (the
client SDK's token cache included)."""

import asyncio
import random

import pytest
from sekisho.backoff import Backoff
from sekisho.client.cache import CacheKey, ExchangedToken, TokenCache, cache_key
from sekisho.lru import LruMap
from sekisho.singleflight import SingleFlight


def test_lru_evicts_the_least_recently_used() -> None:
    lru: LruMap[str, int] = LruMap(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.get("a") == 1  # a is now the most recent
    lru.put("c", 3)
    assert ("a" in lru, "b" in lru, "c" in lru) == (True, False, True)


def test_lru_peek_does_not_refresh_recency() -> None:
    lru: LruMap[str, int] = LruMap(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.peek("a") == 1
    lru.put("c", 3)
    assert "a" not in lru
    assert list(lru.values()) == [2, 3]


def test_lru_pop_clear_and_a_zero_bound() -> None:
    lru: LruMap[str, int] = LruMap(0)
    lru.put("a", 1)
    assert len(lru) == 0
    lru.max_entries = 3
    lru.put("a", 1)
    lru.pop("a")
    lru.pop("missing")
    lru.put("b", 2)
    lru.clear()
    assert len(lru) == 0


async def test_single_flight_shares_one_run_per_key() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    release = asyncio.Event()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return runs

    waiters = [asyncio.ensure_future(flights.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert flights.running("k")
    release.set()
    assert await asyncio.gather(*waiters) == [1] * 5
    assert (runs, len(flights)) == (1, 0)  # finished runs leave the map
    assert await flights.run("k", work) == 2  # a later call runs again


async def test_a_cancelled_waiter_does_not_cancel_the_shared_run() -> None:
    flights: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    first = asyncio.ensure_future(flights.run("k", work))
    second = asyncio.ensure_future(flights.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == "done"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_single_flight_errors_reach_every_waiter() -> None:
    flights: SingleFlight[str, str] = SingleFlight()

    async def work() -> str:
        await asyncio.sleep(0)
        raise ValueError("boom")

    results = await asyncio.gather(
        flights.run("k", work), flights.run("k", work), return_exceptions=True
    )
    assert [type(r) for r in results] == [ValueError, ValueError]
    assert len(flights) == 0


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(-1, 0.5), (0, 0.5), (1, 1.0), (3, 4.0), (6, 30.0), (10_000, 30.0)],
    ids=["negative", "first", "second", "fourth", "capped", "huge"],
)
def test_backoff_ceiling_doubles_up_to_the_cap(attempt: int, ceiling: float) -> None:
    assert Backoff(0.5, 30.0).ceiling(attempt) == ceiling


def test_backoff_full_jitter_stays_under_the_ceiling() -> None:
    backoff, rng = Backoff(0.05, 0.8), random.Random(7)  # noqa: S311 (jitter, not crypto)
    draws = [backoff.jittered(attempt, rng) for attempt in range(8) for _ in range(50)]
    assert all(0 <= d <= 0.8 for d in draws)
    assert max(backoff.jittered(1, rng) for _ in range(200)) <= 0.1
    assert len(set(draws)) > 300  # jittered, not a fixed schedule


def _token(expires_at: float) -> ExchangedToken:
    return ExchangedToken("t", "urn:x", "Bearer", expires_at, (), (), "aud", "jti", "d")


def _key(name: str) -> CacheKey:
    return cache_key(name, "aud", (), (), "urn:x", subject_token_type="urn:id")


def test_client_token_cache_drops_expired_tokens_before_live_ones() -> None:
    cache = TokenCache(refresh_ahead_seconds=0, max_entries=2)
    cache.put(_key("expired"), _token(expires_at=10), now=0)
    cache.put(_key("live"), _token(expires_at=100), now=0)
    cache.put(_key("new"), _token(expires_at=100), now=50)
    assert [cache.get(_key(n), now=50)[0] is not None for n in ("live", "new")] == [True, True]
    assert cache.get(_key("expired"), now=0)[0] is None


def test_client_token_cache_evicts_the_least_recently_used_live_token() -> None:
    cache = TokenCache(refresh_ahead_seconds=0, max_entries=2)
    cache.put(_key("a"), _token(expires_at=100), now=0)
    cache.put(_key("b"), _token(expires_at=100), now=0)
    assert cache.get(_key("a"), now=1)[0] is not None  # a is now the most recent
    cache.put(_key("c"), _token(expires_at=100), now=1)
    found = [cache.get(_key(n), now=1)[0] is not None for n in ("a", "b", "c")]
    assert found == [True, False, True]
