"""sekisho.client's TokenCache when full: expired tokens go before live ones, and a full cache of
live tokens (a gateway with many users) does not read every entry on every put."""

from typing import Any

from sekisho.client.cache import SWEEP_INTERVAL_SECONDS, ExchangedToken, TokenCache, cache_key
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.lru import LruMap


class CountingLru(LruMap[Any, Any]):
    """LruMap that counts full reads (items())."""

    scans = 0

    def items(self) -> Any:
        self.scans += 1
        return super().items()


def _token(n: int, expires_at: float) -> ExchangedToken:
    return ExchangedToken(f"t{n}", "urn:x", "N_A", expires_at, (), (), "aud", f"j{n}", "d")


def _key(n: int) -> Any:
    return cache_key(f"subject-{n}", "aud", (), (), "urn:x", subject_token_type="urn:id")


def _counting(cache: TokenCache, max_entries: int) -> CountingLru:
    counting = CountingLru(max_entries)
    cache._entries = counting
    return counting


def test_a_full_cache_of_live_tokens_is_not_scanned_on_every_put() -> None:
    cache = TokenCache(refresh_ahead_seconds=30)
    entries = _counting(cache, 100)
    for n in range(100):
        cache.put(_key(n), _token(n, 1000.0 + n), now=0.0)
    for n in range(100, 1100):  # full of tokens that expire from t=1000: nothing to sweep
        cache.put(_key(n), _token(n, 2000.0), now=1.0 + n / 1000)
    assert entries.scans == 0
    assert len(entries) == 100  # the least recently used made room


def test_expired_tokens_go_before_live_ones_once_one_may_have_expired() -> None:
    cache = TokenCache(refresh_ahead_seconds=30)
    entries = _counting(cache, 3)
    cache.put(_key(0), _token(0, 100.0), now=0.0)  # expires first
    cache.put(_key(1), _token(1, 500.0), now=0.0)
    cache.put(_key(2), _token(2, 500.0), now=0.0)
    cache.get(_key(0), now=1.0)  # most recently used: LRU alone would keep it
    cache.put(_key(3), _token(3, 500.0), now=200.0)
    assert entries.scans == 1
    assert cache.get(_key(0), now=200.0)[0] is None  # the expired one went
    assert all(cache.get(_key(n), now=200.0)[0] for n in (1, 2, 3))


def test_sweeps_are_at_most_one_per_interval() -> None:
    cache = TokenCache(refresh_ahead_seconds=30)
    entries = _counting(cache, 10)
    for n in range(10):
        cache.put(_key(n), _token(n, 10.0 + n * 0.01), now=0.0)  # expire one by one
    for n in range(10, 40):
        cache.put(_key(n), _token(n, 1000.0), now=10.0 + n * 0.01)
    assert entries.scans == 1  # within one SWEEP_INTERVAL_SECONDS
    cache.put(_key(99), _token(99, 1000.0), now=10.5 + SWEEP_INTERVAL_SECONDS)
    assert entries.scans <= 2


def test_the_same_token_declared_another_type_is_another_entry() -> None:
    """An ID token and an access token are checked by different rules (presets, client id): a
    token exchanged as one must not answer a request for the other."""
    as_id = cache_key("t", "aud", (), (), "urn:x", subject_token_type=TOKEN_TYPE_ID_TOKEN)
    as_access = cache_key("t", "aud", (), (), "urn:x", subject_token_type=TOKEN_TYPE_ACCESS_TOKEN)
    cache = TokenCache(refresh_ahead_seconds=30)
    cache.put(as_id, _token(1, 1000.0), now=0.0)
    assert cache.get(as_access, now=1.0)[0] is None
    assert cache.get(as_id, now=1.0)[0] is not None
