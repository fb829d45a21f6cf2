"""JWK Set parsing and the per-issuer JWKS cache (sekisho.verify.jwks), with a fake clock and
fetcher: throttled refetch, last-known-good keys, single-flight fetches, OIDC discovery."""

import asyncio
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sekisho.signing.material import public_jwk
from sekisho.verify.fetcher import FetchError
from sekisho.verify.jwk_set import MAX_KEYS, parse_jwks
from sekisho.verify.jwks import JwksCache, JwksUnavailableError

from tests.fakes.clock import FakeClock
from tests.fakes.fetcher import FakeFetcher
from tests.fakes.idp import TestIdp

ISSUER = "https://idp.example.com"
JWKS_URI = f"{ISSUER}/jwks"
DISCOVERY_URL = f"{ISSUER}/.well-known/openid-configuration"
IDP = TestIdp(ISSUER)


def ec_jwk(**overrides: Any) -> dict[str, Any]:
    jwk = public_jwk(IDP.ec_key.public_key())
    jwk.update({"kid": "ec-1", "alg": "ES256", "use": "sig"})
    jwk.update(overrides)
    return {k: v for k, v in jwk.items() if v is not None}


# A well-formed private key: PyJWK would parse it, so only the "d" rule keeps it out.
PRIVATE_EC_JWK = ECAlgorithm.to_jwk(IDP.ec_key, as_dict=True) | {"kid": "private", "use": "sig"}


class SlowFetcher(FakeFetcher):
    """A FakeFetcher whose answers take a moment, so concurrent callers overlap."""

    async def fetch_json(self, url: str) -> Any:
        await asyncio.sleep(0.01)
        return await super().fetch_json(url)


def cache(fetcher: FakeFetcher, clock: FakeClock | None = None, **kwargs: Any) -> JwksCache:
    options: dict[str, Any] = {"jwks_uri": JWKS_URI, "min_refetch_interval": 30.0} | kwargs
    return JwksCache(ISSUER, fetcher, clock or FakeClock(), **options)


# --- parse_jwks -------------------------------------------------------------------------------


def test_parse_jwks_keeps_usable_signing_keys_by_kid() -> None:
    keys = parse_jwks(IDP.jwks())
    assert set(keys) == {IDP.rsa_kid, IDP.ec_kid}
    assert (keys[IDP.rsa_kid].kty, keys[IDP.rsa_kid].alg) == ("RSA", "RS256")
    assert (keys[IDP.ec_kid].kty, keys[IDP.ec_kid].alg) == ("EC", "ES256")


@pytest.mark.parametrize(
    "bad",
    [
        ec_jwk(kid="enc", use="enc"),
        PRIVATE_EC_JWK,
        {"kty": "RSA", "kid": "no-modulus", "e": "AQAB"},
        {"kty": "EC", "kid": "bad-point", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "XYZ", "kid": "unknown-kty"},
        {"kty": "oct", "kid": "alg-none", "k": "AAAA", "alg": "none"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "alg": "HS256"},
        ec_jwk(kid="alg-for-rsa", alg="RS256"),
        ec_jwk(kid="alg-list", alg=["ES256"]),
        ec_jwk(kid=7),
        "not-an-object",
    ],
    ids=["use-enc", "private-d", "unparseable-rsa", "unparseable-ec", "unknown-kty", "alg-none",
         "symmetric-hmac", "alg-of-other-kty", "alg-not-string", "non-string-kid", "non-object"],
)  # fmt: skip
def test_parse_jwks_skips_unusable_keys(bad: object) -> None:
    """Regression: PyJWT's InvalidKeyError / NotImplementedError once escaped and sank the set."""
    keys = parse_jwks({"keys": [ec_jwk(), bad]})
    assert list(keys) == ["ec-1"]


def test_parse_jwks_drops_every_key_sharing_a_kid() -> None:
    other = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())
    keys = parse_jwks({"keys": [ec_jwk(kid="dup"), other | {"kid": "dup"}, ec_jwk(kid="solo")]})
    assert list(keys) == ["solo"]


def test_parse_jwks_keeps_a_lone_key_without_kid() -> None:
    """Regression: a kid-less JWK was counted as None but stored as "", so it was always dropped."""
    keys = parse_jwks({"keys": [ec_jwk(kid=None)]})
    assert list(keys) == [""]


def test_parse_jwks_without_alg_leaves_the_key_unpinned() -> None:
    assert parse_jwks({"keys": [ec_jwk(alg=None)]})["ec-1"].alg == ""


def test_parse_jwks_accepts_exactly_max_keys() -> None:
    keys = parse_jwks({"keys": [ec_jwk(kid=f"k{i}") for i in range(MAX_KEYS)]})
    assert len(keys) == MAX_KEYS == 64


def test_parse_jwks_rejects_more_than_max_keys() -> None:
    with pytest.raises(FetchError, match="more than 64 keys"):
        parse_jwks({"keys": [ec_jwk(kid=f"k{i}") for i in range(MAX_KEYS + 1)]})


@pytest.mark.parametrize(
    "document",
    [[], {}, {"keys": {}}, {"keys": "x"}, None],
    ids=["list", "empty", "obj", "str", "null"],
)
def test_parse_jwks_rejects_a_document_that_is_not_a_jwk_set(document: object) -> None:
    with pytest.raises(FetchError):
        parse_jwks(document)


# --- JwksCache: fetching and throttling -------------------------------------------------------


async def test_first_lookup_fetches_the_jwks() -> None:
    fetcher = FakeFetcher({JWKS_URI: IDP.jwks()})
    jwks = cache(fetcher)
    assert not jwks.loaded
    key = await jwks.key(IDP.rsa_kid)
    assert key is not None
    assert key.kid == IDP.rsa_kid
    assert jwks.loaded
    assert fetcher.calls == [JWKS_URI]


async def test_known_kid_is_served_from_memory_without_refetch() -> None:
    fetcher, clock = FakeFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    jwks = cache(fetcher, clock)
    for _ in range(10):
        assert await jwks.key(IDP.ec_kid) is not None
        clock.advance(3600)
    assert fetcher.calls == [JWKS_URI]


async def test_unknown_kid_refetch_is_throttled_by_the_min_interval() -> None:
    fetcher, clock = FakeFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    jwks = cache(fetcher, clock)
    await jwks.key(IDP.ec_kid)
    assert await jwks.key("unknown") is None
    clock.advance(29.9)
    assert await jwks.key("unknown-2") is None
    assert fetcher.calls == [JWKS_URI]
    clock.advance(0.1)
    assert await jwks.key("unknown-3") is None
    assert fetcher.calls == [JWKS_URI, JWKS_URI]
    assert await jwks.key("unknown-4") is None
    assert fetcher.calls == [JWKS_URI, JWKS_URI]


async def test_unknown_kid_refetch_finds_a_rotated_key() -> None:
    fetcher, clock = FakeFetcher({JWKS_URI: {"keys": [ec_jwk(kid="old")]}}), FakeClock()
    jwks = cache(fetcher, clock)
    await jwks.key("old")
    fetcher.documents[JWKS_URI] = {"keys": [ec_jwk(kid="old"), ec_jwk(kid="new")]}
    clock.advance(30)
    key = await jwks.key("new")
    assert key is not None
    assert key.kid == "new"


async def test_last_known_good_keys_are_kept_when_fetching_starts_failing() -> None:
    fetcher, clock = FakeFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    jwks = cache(fetcher, clock)
    await jwks.key(IDP.rsa_kid)
    fetcher.failing = True
    clock.advance(31)
    assert await jwks.key("unknown") is None  # the refetch fails quietly
    await jwks.refresh()
    assert len(fetcher.calls) == 3
    assert await jwks.key(IDP.rsa_kid) is not None
    assert jwks.loaded


async def test_last_known_good_keys_survive_an_invalid_document() -> None:
    fetcher, clock = FakeFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    jwks = cache(fetcher, clock)
    await jwks.key(IDP.rsa_kid)
    fetcher.documents[JWKS_URI] = {"keys": "garbage"}
    await jwks.refresh()
    assert await jwks.key(IDP.rsa_kid) is not None


async def test_unavailable_when_keys_were_never_loaded() -> None:
    fetcher, clock = FakeFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    fetcher.failing = True
    jwks = cache(fetcher, clock)
    with pytest.raises(JwksUnavailableError):
        await jwks.key(IDP.rsa_kid)
    assert not jwks.loaded


async def test_never_loaded_issuer_is_not_refetched_at_the_request_rate() -> None:
    """A down IdP is retried once per interval (and by the background loop), not per request."""
    fetcher, clock = FakeFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    fetcher.failing = True
    jwks = cache(fetcher, clock)
    for _ in range(5):
        with pytest.raises(JwksUnavailableError):
            await jwks.key(IDP.rsa_kid)
    assert fetcher.calls == [JWKS_URI]
    fetcher.failing = False
    clock.advance(30)
    assert await jwks.key(IDP.rsa_kid) is not None
    assert fetcher.calls == [JWKS_URI, JWKS_URI]


async def test_concurrent_lookups_share_a_single_fetch() -> None:
    fetcher = SlowFetcher({JWKS_URI: IDP.jwks()})
    jwks = cache(fetcher)
    keys = await asyncio.gather(*(jwks.key(IDP.rsa_kid) for _ in range(20)))
    assert all(key is not None for key in keys)
    assert fetcher.calls == [JWKS_URI]


async def test_concurrent_refreshes_share_a_single_fetch() -> None:
    """The background loop and request-path refetches may overlap: still one request."""
    fetcher = SlowFetcher({JWKS_URI: IDP.jwks()})
    jwks = cache(fetcher)
    await asyncio.gather(*(jwks.refresh() for _ in range(20)))
    assert fetcher.calls == [JWKS_URI]
    await jwks.refresh()  # a later refresh is a new fetch
    assert fetcher.calls == [JWKS_URI, JWKS_URI]


async def test_concurrent_unknown_kids_after_the_interval_share_a_single_refetch() -> None:
    fetcher, clock = SlowFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    jwks = cache(fetcher, clock)
    await jwks.key(IDP.rsa_kid)
    clock.advance(31)
    results = await asyncio.gather(*(jwks.key(f"unknown-{i}") for i in range(20)))
    assert results == [None] * 20
    assert fetcher.calls == [JWKS_URI, JWKS_URI]


async def test_token_without_kid_triggers_the_first_fetch_and_gets_the_only_key() -> None:
    fetcher = FakeFetcher({JWKS_URI: {"keys": [ec_jwk(kid=None)]}})
    jwks = cache(fetcher)
    key = await jwks.key("")
    assert key is not None
    assert key.kty == "EC"
    assert fetcher.calls == [JWKS_URI]


async def test_token_without_kid_gets_no_key_when_the_issuer_publishes_several() -> None:
    fetcher = FakeFetcher({JWKS_URI: IDP.jwks()})
    jwks = cache(fetcher)
    assert await jwks.key("") is None


# --- JwksCache: OIDC discovery ----------------------------------------------------------------


def discovery(**overrides: Any) -> dict[str, Any]:
    return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/discovered-keys"} | overrides


async def test_discovered_jwks_uri_is_used() -> None:
    fetcher = FakeFetcher({DISCOVERY_URL: discovery(), f"{ISSUER}/discovered-keys": IDP.jwks()})
    jwks = cache(fetcher, jwks_uri="", discovery_url=DISCOVERY_URL)
    assert await jwks.key(IDP.rsa_kid) is not None
    assert fetcher.calls == [DISCOVERY_URL, f"{ISSUER}/discovered-keys"]


@pytest.mark.parametrize(
    ("document", "never_fetched"),
    [
        (discovery(issuer="https://evil.example.com"), f"{ISSUER}/discovered-keys"),
        (discovery(issuer=ISSUER + "/"), f"{ISSUER}/discovered-keys"),
        (discovery(issuer=None), f"{ISSUER}/discovered-keys"),
        (discovery(jwks_uri="http://idp.example.com/keys"), "http://idp.example.com/keys"),
        (discovery(jwks_uri="ftp://idp.example.com/keys"), "ftp://idp.example.com/keys"),
        (discovery(jwks_uri=None), None),
        (discovery(jwks_uri=["https://idp.example.com/keys"]), None),
        (["not", "an", "object"], None),
        # Red team session 11: urlsplit's ValueError escaped as a 500.
        (discovery(jwks_uri="https://[::1/keys"), None),
        (discovery(jwks_uri="http://[127.0.0.1/keys"), None),
    ],
    ids=["issuer-mismatch", "issuer-trailing-slash", "issuer-missing", "http-non-loopback",
         "ftp", "no-jwks-uri", "jwks-uri-not-string", "not-an-object", "jwks-uri-unclosed-ipv6",
         "jwks-uri-unclosed-bracket"],
)  # fmt: skip
async def test_unacceptable_discovery_document_is_refused(
    document: object, never_fetched: str | None
) -> None:
    """OIDC Discovery §4.3 (issuer must match) and https-only key endpoints (mix-up, MITM)."""
    fetcher = FakeFetcher({DISCOVERY_URL: document})
    if never_fetched:
        fetcher.documents[never_fetched] = IDP.jwks()
    jwks = cache(fetcher, jwks_uri="", discovery_url=DISCOVERY_URL)
    with pytest.raises(JwksUnavailableError):
        await jwks.key(IDP.rsa_kid)
    assert fetcher.calls == [DISCOVERY_URL]


@pytest.mark.parametrize(
    "discovery_url",
    ["http://127.0.0.1:8080/.well-known/openid-configuration", "http://localhost:8080/oidc"],
)
async def test_http_jwks_uri_on_loopback_is_accepted_from_a_loopback_discovery_document(
    discovery_url: str,
) -> None:
    local = "http://127.0.0.1:8081/keys"
    fetcher = FakeFetcher({discovery_url: discovery(jwks_uri=local), local: IDP.jwks()})
    jwks = cache(fetcher, jwks_uri="", discovery_url=discovery_url)
    assert await jwks.key(IDP.ec_kid) is not None
    assert fetcher.calls == [discovery_url, local]


@pytest.mark.parametrize(
    "local",
    ["http://127.0.0.1:8081/keys", "http://localhost:8080/realms/agents/certs", "http://[::1]/k",
     "http://127.9.9.9/keys"],
)  # fmt: skip
async def test_an_https_discovery_document_cannot_send_key_fetches_to_plain_http_loopback(
    local: str,
) -> None:
    """Session 12: the exposure check refuses a configured plain-http IdP on loopback when a
    listener is off loopback (any local process could bind the port and serve keys), but a
    remote discovery document naming one (a compromised IdP, or Keycloak without its frontend
    URL set, which names `http://localhost:8080/...`) was followed at run time: a local process
    on that port would have served the keys of every token for that issuer."""
    fetcher = FakeFetcher({DISCOVERY_URL: discovery(jwks_uri=local), local: IDP.jwks()})
    jwks = cache(fetcher, jwks_uri="", discovery_url=DISCOVERY_URL)
    with pytest.raises(JwksUnavailableError):
        await jwks.key(IDP.ec_kid)
    assert fetcher.calls == [DISCOVERY_URL]


async def test_a_rediscovered_plain_http_loopback_jwks_uri_keeps_the_last_good_one() -> None:
    good = f"{ISSUER}/discovered-keys"
    fetcher = FakeFetcher({DISCOVERY_URL: discovery(), good: IDP.jwks()})
    jwks = cache(fetcher, jwks_uri="", discovery_url=DISCOVERY_URL)
    await jwks.refresh()
    local = "http://127.0.0.1:8081/keys"
    fetcher.documents[DISCOVERY_URL] = discovery(jwks_uri=local)
    fetcher.documents[local] = {"keys": [ec_jwk(kid="planted")]}
    await jwks.refresh()
    assert jwks.cached_key("planted") is None and jwks.cached_key(IDP.ec_kid) is not None
    assert local not in fetcher.calls


MOVED_URI = f"{ISSUER}/moved-keys"


async def test_moved_jwks_uri_is_followed_on_the_next_refresh() -> None:
    """An IdP that moves its JWKS (a new jwks_uri in its discovery document) is followed at the
    next refresh: discovery is re-read every time, the URI was once kept until restart."""
    old_uri = f"{ISSUER}/discovered-keys"
    fetcher = FakeFetcher({DISCOVERY_URL: discovery(), old_uri: IDP.jwks()})
    jwks = cache(fetcher, jwks_uri="", discovery_url=DISCOVERY_URL)
    await jwks.refresh()
    fetcher.documents[DISCOVERY_URL] = discovery(jwks_uri=MOVED_URI)
    fetcher.documents[MOVED_URI] = {"keys": [ec_jwk(kid="moved")]}
    del fetcher.documents[old_uri]  # the old location is gone
    await jwks.refresh()
    assert jwks.cached_key("moved") is not None
    assert fetcher.calls == [DISCOVERY_URL, old_uri, DISCOVERY_URL, MOVED_URI]


@pytest.mark.parametrize(
    "document",
    [
        None,  # discovery fails
        discovery(issuer="https://evil.example.com"),
        discovery(jwks_uri="http://idp.example.com/keys"),
        discovery(jwks_uri="https://[::1/keys"),
        discovery(jwks_uri=None),
    ],
    ids=["discovery-down", "issuer-mismatch", "http-non-loopback", "unparseable-uri", "no-uri"],
)
async def test_refused_rediscovery_keeps_the_last_good_jwks_uri(document: object) -> None:
    """A re-read discovery document passes the same issuer and https rules as the first one;
    when it fails or is refused, keys are still refreshed from the jwks_uri that last served
    good keys (the IdP's new key arrives), and the refused URI is never fetched."""
    good_uri = f"{ISSUER}/discovered-keys"
    fetcher = FakeFetcher({DISCOVERY_URL: discovery(), good_uri: IDP.jwks()})
    jwks = cache(fetcher, jwks_uri="", discovery_url=DISCOVERY_URL)
    await jwks.refresh()
    if document is None:
        del fetcher.documents[DISCOVERY_URL]
    else:
        fetcher.documents[DISCOVERY_URL] = document
    fetcher.documents["http://idp.example.com/keys"] = {"keys": [ec_jwk(kid="attacker")]}
    fetcher.documents[good_uri] = {"keys": [ec_jwk(kid="rotated")]}
    await jwks.refresh()
    assert jwks.cached_key("rotated") is not None
    assert jwks.cached_key("attacker") is None
    assert fetcher.calls == [DISCOVERY_URL, good_uri, DISCOVERY_URL, good_uri]


async def test_pinned_jwks_uri_never_reads_discovery() -> None:
    """A configured jwks_uri wins: discovery is not fetched, first time or later."""
    fetcher = FakeFetcher({JWKS_URI: IDP.jwks(), DISCOVERY_URL: discovery(jwks_uri=MOVED_URI)})
    jwks = cache(fetcher, discovery_url=DISCOVERY_URL)
    await jwks.refresh()
    await jwks.refresh()
    assert fetcher.calls == [JWKS_URI, JWKS_URI]


async def test_an_issuer_never_loaded_is_retried_within_seconds_not_after_the_throttle() -> None:
    """Walkthrough session 13 (and a flaky test): Sekisho's first fetch ran before the dev IdP
    listened; the background retry waited the whole 30 s refetch interval and the on-demand
    fetch is throttled as long, so every token of that IdP got UNAVAILABLE for 30 s after it
    was up. Until the first good fetch the loop backs off 1, 2, 4 … s, capped at the interval."""
    fetcher, clock = FakeFetcher({JWKS_URI: IDP.jwks()}), FakeClock()
    jwks = cache(fetcher, clock, min_refetch_interval=30)
    fetcher.failing = True
    waits = []
    for _ in range(7):
        await jwks.refresh()
        waits.append(jwks.next_refresh_in(300))
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    fetcher.failing = False
    await jwks.refresh()
    assert jwks.next_refresh_in(300) == 300
    fetcher.failing = True
    clock.advance(300)
    await jwks.refresh()
    assert jwks.next_refresh_in(300) == 30  # keys in hand: the throttle, as before


async def test_failed_refresh_retries_sooner_and_last_good_keys_expire_after_max_stale() -> None:
    """After a good fetch the background loop waits the full interval; after a failed one it
    retries at the refetch interval, so an outage shorter than max_stale never expires keys.
    Past max_stale the cache is unavailable (fail closed) and `loaded` turns false (readiness)."""
    idp, clock = TestIdp("https://idp.example.com"), FakeClock()
    fetcher = FakeFetcher({"https://idp.example.com/jwks": idp.jwks()})
    cache = JwksCache(
        "https://idp.example.com",
        fetcher,
        clock,
        jwks_uri="https://idp.example.com/jwks",
        min_refetch_interval=30,
        max_stale_seconds=600,
    )
    await cache.refresh()
    assert cache.next_refresh_in(300) == 300
    fetcher.failing = True
    clock.advance(300)
    await cache.refresh()
    assert cache.next_refresh_in(300) == 30
    assert await cache.key(idp.ec_kid) is not None  # 300 s stale: still the last good keys
    clock.advance(301)
    assert not cache.loaded
    assert cache.cached_key(idp.ec_kid) is None
    with pytest.raises(JwksUnavailableError, match="not refreshed for over 600 s"):
        await cache.key(idp.ec_kid)
    fetcher.failing = False
    clock.advance(30)
    assert await cache.key(idp.ec_kid) is not None
    assert cache.loaded and cache.next_refresh_in(300) == 300
