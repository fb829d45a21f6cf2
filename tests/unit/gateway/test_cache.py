"""The gateway token cache: expiry minus margin, LRU bound, hashed keys."""

from sekisho.gateway.cache import GatewayTokenCache, cache_key

from tests.fakes.clock import FakeClock


def test_hit_until_expiry_minus_margin() -> None:
    clock = FakeClock(1000.0)
    cache = GatewayTokenCache(clock, max_entries=10, margin_seconds=30)
    cache.put("k", "tok", expires_at=1100)
    assert cache.get("k") == "tok"
    clock.advance(69)
    assert cache.get("k") == "tok"
    clock.advance(1)  # 1070 = 1100 - 30
    assert cache.get("k") is None
    assert cache.stats().hits == 2
    assert cache.stats().misses == 1
    assert cache.stats().size == 0


def test_token_inside_margin_is_not_stored() -> None:
    cache = GatewayTokenCache(FakeClock(1000.0), max_entries=10, margin_seconds=30)
    cache.put("k", "tok", expires_at=1020)
    assert cache.get("k") is None


def test_bounded_least_recently_used_goes_first() -> None:
    cache = GatewayTokenCache(FakeClock(1000.0), max_entries=2, margin_seconds=0)
    cache.put("a", "A", 2000)
    cache.put("b", "B", 2000)
    assert cache.get("a") == "A"
    cache.put("c", "C", 2000)
    assert cache.get("b") is None
    assert cache.get("a") == "A"
    assert cache.get("c") == "C"
    assert cache.stats().size == 2


def test_zero_entries_disables() -> None:
    cache = GatewayTokenCache(FakeClock(1000.0), max_entries=0, margin_seconds=0)
    cache.put("a", "A", 2000)
    assert cache.get("a") is None


def test_key_hashes_token_and_separates_parts() -> None:
    key = cache_key("secret-token", "0", "tool=x")
    assert "secret-token" not in key
    assert key != cache_key("secret-token", "0tool=x")
    assert key != cache_key("other-token", "0", "tool=x")


def test_a_token_whose_key_left_the_jwks_is_never_served() -> None:
    """`sekisho keys revoke` (a compromise) takes the kid out of the JWKS at once; a cached token
    it signed would fail at every downstream until it expired."""
    published = {"k1", "k2"}
    cache = GatewayTokenCache(
        FakeClock(1000.0), max_entries=10, margin_seconds=0, published=published.__contains__
    )
    cache.put("a", "A", 2000, kid="k1")
    cache.put("b", "B", 2000, kid="k2")
    assert (cache.get("a"), cache.get("b")) == ("A", "B")
    published.discard("k1")
    assert cache.get("a") is None
    assert cache.get("b") == "B"
    assert len(cache) == 1  # dropped, not kept for later
