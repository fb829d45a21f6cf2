"""InMemoryReplayCache at its bound: what a new jti costs once the cache is full, counted as the
stored expiries compared with `now` (each comparison is one entry examined), and what it keeps.

Red team session 13: once full (1,000,000 entries) of live entries, every new jti scanned all of
them before it was refused. The cache now orders its entries by expiry: a purge examines the
expired entries and one more, whatever the size."""

from typing import Any

import pytest
from sekisho.verify.replay import InMemoryReplayCache, ReplayCacheUnavailableError

BOUND = 1_000


class CountingNow(float):
    """A `now` that counts the comparisons made with it. Python tries a float subclass's
    reflected method first (`expiry >= now` calls `now.__le__`), so every stored expiry compared
    with it is counted, whichever side it is on."""

    comparisons = 0

    def _count(self, other: Any, result: bool) -> bool:
        CountingNow.comparisons += 1
        return result

    def __lt__(self, other: Any) -> bool:
        return self._count(other, float(self) < other)

    def __le__(self, other: Any) -> bool:
        return self._count(other, float(self) <= other)

    def __gt__(self, other: Any) -> bool:
        return self._count(other, float(self) > other)

    def __ge__(self, other: Any) -> bool:
        return self._count(other, float(self) >= other)

    __hash__ = float.__hash__


def counted(now: float) -> CountingNow:
    CountingNow.comparisons = 0
    return CountingNow(now)


async def test_a_full_cache_of_live_entries_refuses_without_scanning_them() -> None:
    cache = InMemoryReplayCache(max_entries=BOUND)
    for i in range(BOUND):
        assert await cache.first_use("iss", f"live-{i}", 100 + i, now=0)
    for i in range(50):
        now = counted(50)
        with pytest.raises(ReplayCacheUnavailableError, match="full"):
            await cache.first_use("iss", f"new-{i}", 500, now=now)
        assert CountingNow.comparisons <= 2  # before: BOUND + 1 for each new jti
    # Nothing was forgotten: every live jti is still a replay.
    assert not await cache.first_use("iss", "live-0", 100, now=99)
    assert not await cache.first_use("iss", f"live-{BOUND - 1}", 100 + BOUND, now=99)


async def test_a_full_cache_purges_only_its_expired_entries_once_each() -> None:
    cache = InMemoryReplayCache(max_entries=BOUND)
    for i in range(BOUND):  # expiries 1 .. BOUND
        assert await cache.first_use("iss", f"j{i}", i + 1, now=0)
    total = 0
    for i in range(BOUND // 2):  # at BOUND / 2 + 0.5 entries 0 .. 499 have expired
        now = counted(BOUND / 2 + 0.5)
        assert await cache.first_use("iss", f"new-{i}", 10 * BOUND, now=now)
        total += CountingNow.comparisons
    # The first purge examines the 500 expired entries and the first live one; the next 499
    # inserts find room (before: that purge examined all 1,000).
    assert total == BOUND // 2 + 1
    with pytest.raises(ReplayCacheUnavailableError):
        await cache.first_use("iss", "one-more", 10 * BOUND, now=counted(BOUND / 2 + 0.5))
    # Same semantics: an expired jti may be used again, a live one (expiry >= now) may not.
    assert not await cache.first_use("iss", f"j{BOUND - 1}", BOUND, now=BOUND / 2 + 0.5)
    assert not await cache.first_use("iss", "new-0", 10 * BOUND, now=BOUND / 2 + 0.5)


async def test_a_jti_stored_again_after_expiry_keeps_the_structure_bounded() -> None:
    """A key stored again leaves its old entry in the expiry order; those never outnumber the
    bound twice over, even while the cache never fills (no purge runs)."""
    cache = InMemoryReplayCache(max_entries=10)
    for second in range(1, 200):
        # The entry stored a second ago has expired: a first use; then a replay.
        assert await cache.first_use("iss", "same", second + 1, now=second + 0.5)
        assert not await cache.first_use("iss", "same", second + 1, now=second + 0.5)
        assert len(cache._by_expiry) <= 2 * 10  # the heap is private; its bound is the point
    assert len(cache._seen) == 1
    # A stale entry never removes the key's live entry: still a replay before its expiry.
    assert not await cache.first_use("iss", "same", 300, now=199)
