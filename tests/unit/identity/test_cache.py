"""CachingTokenVerifier (sekisho.identity.cache): reuse until exp, key separation, key removal."""

from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import InvalidTokenError
from sekisho.identity.cache import CachingTokenVerifier
from sekisho.identity.verifier import TrustedIssuer
from sekisho.models import VerifiedToken

from tests.fakes.idp import TestIdp
from tests.harness import IDP_A
from tests.unit.identity.test_verifier import Setup


class CountingVerifier:
    """The real verifier, counting how often it actually runs."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self.calls = 0

    async def verify(self, token: str, token_type: str) -> VerifiedToken:
        self.calls += 1
        return await self.setup.verifier.verify(token, token_type)


def cached(setup: Setup, **limits: Any) -> tuple[CachingTokenVerifier, CountingVerifier]:
    inner = CountingVerifier(setup)
    issuers = {IDP_A: TrustedIssuer(config=setup.config, jwks=setup.cache)}
    options = {"max_entries": 100, "max_seconds": 300} | limits
    cache = CachingTokenVerifier(inner, issuers, setup.clock, **options)  # type: ignore[arg-type]
    return cache, inner


async def test_a_verified_token_is_served_from_the_cache() -> None:
    setup = Setup()
    cache, inner = cached(setup)
    token = setup.token()
    first = await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    second = await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert second == first
    assert inner.calls == 1
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


async def test_the_token_type_is_part_of_the_key() -> None:
    # One JWT is checked under different rules as an id_token and as an access token.
    setup = Setup()
    cache, inner = cached(setup)
    token = setup.token(client_id="agent-app")
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    verified = await cache.verify(token, TOKEN_TYPE_ACCESS_TOKEN)
    assert verified.token_type == TOKEN_TYPE_ACCESS_TOKEN
    assert inner.calls == 2


async def test_distinct_tokens_do_not_share_an_entry() -> None:
    setup = Setup()
    cache, inner = cached(setup)
    alice = await cache.verify(setup.token(sub="alice"), TOKEN_TYPE_ID_TOKEN)
    bob = await cache.verify(setup.token(sub="bob"), TOKEN_TYPE_ID_TOKEN)
    assert (alice.subject, bob.subject) == ("alice", "bob")
    assert inner.calls == 2


async def test_an_expired_token_is_not_served_from_the_cache() -> None:
    setup = Setup()
    cache, inner = cached(setup, max_seconds=3600)
    token = setup.token(exp=int(setup.clock.now()) + 60)
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    setup.clock.advance(61 + 30)  # past exp and the verifier's leeway
    with pytest.raises(InvalidTokenError):
        await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 2


async def test_entries_are_reverified_after_max_seconds() -> None:
    setup = Setup()
    cache, inner = cached(setup, max_seconds=10)
    token = setup.token()
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    setup.clock.advance(9)
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    setup.clock.advance(2)
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 2


async def test_a_key_removed_from_the_idp_jwks_stops_cached_tokens_at_the_next_refresh() -> None:
    setup = Setup()
    cache, inner = cached(setup)
    token = setup.token(alg="RS256")
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    remaining = [k for k in setup.idp.jwks()["keys"] if k["kid"] != setup.idp.rsa_kid]
    setup.fetcher.documents[next(iter(setup.fetcher.documents))] = {"keys": remaining}
    await setup.cache.refresh()
    with pytest.raises(InvalidTokenError):
        await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 2


async def test_a_key_replaced_under_the_same_kid_invalidates_cached_tokens() -> None:
    setup = Setup()
    cache, inner = cached(setup)
    token = setup.token(alg="ES256")
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    # The EC kid now names another EC key: the cached verification no longer stands.
    other = TestIdp(IDP_A, rsa_key="idp_b_rsa.pem", ec_key="idp_b_ec.pem")
    keys = setup.idp.jwks()["keys"]
    swapped = other.jwks()["keys"][1] | {"kid": setup.idp.ec_kid}
    setup.fetcher.documents[next(iter(setup.fetcher.documents))] = {"keys": [keys[0], swapped]}
    await setup.cache.refresh()
    with pytest.raises(InvalidTokenError):
        await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 2


async def test_failures_are_not_cached() -> None:
    setup = Setup()
    cache, inner = cached(setup)
    token = setup.token(aud="someone-else")
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 2
    assert len(cache) == 0


async def test_the_cache_is_bounded_least_recently_used_first() -> None:
    setup = Setup()
    cache, inner = cached(setup, max_entries=2)
    a, b, c = (setup.token(sub=name) for name in ("a", "b", "c"))
    for token in (a, b, a, c):  # b is the least recently used when c arrives
        await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert len(cache) == 2
    await cache.verify(a, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 3
    await cache.verify(b, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 4


async def test_zero_entries_disables_the_cache() -> None:
    setup = Setup()
    cache, inner = cached(setup, max_entries=0)
    token = setup.token()
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    await cache.verify(token, TOKEN_TYPE_ID_TOKEN)
    assert inner.calls == 2
    assert len(cache) == 0
