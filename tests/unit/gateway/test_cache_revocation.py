"""The gateway's minted-token cache drops a token once a revocation in force covers it (a cache
hit never reaches the exchange pipeline's revocation gate, so the cache must check itself)."""

from sekisho.gateway.cache import GatewayTokenCache

from tests.fakes.clock import FakeClock

COVERS = (("subject", "https://idp\x1falice"), ("caller", "agent-1"), ("token", "jti-1"))


def test_a_revoked_cached_token_is_dropped() -> None:
    revoked: set[tuple[str, str]] = set()
    clock = FakeClock()
    cache = GatewayTokenCache(
        clock,
        max_entries=10,
        margin_seconds=0,
        revoked=lambda keys: any(key in revoked for key in keys),
    )
    cache.put("k", "token-a", int(clock.now()) + 300, covers=COVERS)
    cache.put("other", "token-b", int(clock.now()) + 300, covers=(("subject", "bob"),))
    assert cache.get("k") == "token-a"
    revoked.add(("caller", "agent-1"))
    assert cache.get("k") is None
    assert len(cache) == 1 and cache.get("other") == "token-b"


def test_without_status_lists_the_cache_is_unchanged() -> None:
    clock = FakeClock()
    cache = GatewayTokenCache(clock, max_entries=10, margin_seconds=0)
    cache.put("k", "token-a", int(clock.now()) + 300)
    assert cache.get("k") == "token-a"
