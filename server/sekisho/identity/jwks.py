"""Per-issuer JWKS cache (RFC 7517): background refresh, throttled refetch on unknown kid,
last-known-good keys kept while the IdP is unreachable, for at most `max_stale_seconds`.

Steady state never fetches on the request path: a kid seen before is answered from memory; only
an unknown kid triggers a refetch, at most once per `min_refetch_interval` per issuer, so a storm
of made-up kids cannot hammer the IdP (the PyJWT advisory pattern STYLE.md warns about).

Keys expire: once the last successful fetch is older than `max_stale_seconds` (the IdP has been
down, slow or serving garbage for that long), the cache answers JwksUnavailableError, so every
exchange fails closed with UNAVAILABLE instead of trusting keys the IdP may have revoked since.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from jwt import PyJWK
from jwt.exceptions import PyJWTError

from sekisho.clock import Clock
from sekisho.config import is_secure_url
from sekisho.identity.fetcher import FetchError, JsonFetcher
from sekisho.singleflight import SingleFlight

log = logging.getLogger(__name__)

MAX_KEYS = 64
_ASYMMETRIC_KTYS = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True, slots=True)
class PublicJwk:
    """A verification key from an IdP's JWKS."""

    kid: str
    kty: str
    alg: str  # "" when the JWK does not pin one
    key: Any


class JwksUnavailableError(Exception):
    """No keys were ever fetched for this issuer, or the last good ones expired, and the
    fetch failed now."""


def parse_jwks(document: Any) -> dict[str, PublicJwk]:
    """Usable signing keys by kid; keys with a duplicated kid are dropped as ambiguous.

    Raises: FetchError when the document is not a JWK Set.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise FetchError("JWKS document has no 'keys' list")
    raw_keys = [k for k in document["keys"][: MAX_KEYS + 1] if isinstance(k, dict)]
    if len(raw_keys) > MAX_KEYS:
        raise FetchError(f"JWKS document holds more than {MAX_KEYS} keys")
    # A JWK without "kid" is keyed as "" (see _parse_key), so count it the same way. Non-string
    # kids (found by tests/fuzz: a list kid is unhashable) are dropped by _parse_key anyway.
    kids = (k.get("kid", "") for k in raw_keys)
    counts = Counter(kid for kid in kids if isinstance(kid, str))
    keys: dict[str, PublicJwk] = {}
    for raw in raw_keys:
        parsed = _parse_key(raw)
        if parsed is not None and counts[parsed.kid] == 1:
            keys[parsed.kid] = parsed
    return keys


def _parse_key(raw: dict[str, Any]) -> PublicJwk | None:
    kid = raw.get("kid", "")
    if not isinstance(kid, str) or raw.get("use", "sig") != "sig" or "d" in raw:
        return None
    # Only asymmetric keys verify IdP tokens; an `oct` key in a public JWKS is a published secret
    # (HMAC key confusion bait), dropped here as well as refused by the alg allow-list.
    if not isinstance(raw.get("kty"), str) or raw["kty"] not in _ASYMMETRIC_KTYS:
        return None
    try:
        jwk = PyJWK(raw)
    # One bad key must not sink the whole set: PyJWTError covers PyJWKError and InvalidKeyError
    # (malformed or unsupported key), NotImplementedError comes from a JWK with alg "none".
    except (PyJWTError, ValueError, TypeError, KeyError, NotImplementedError):
        return None
    alg = raw.get("alg", "")
    return PublicJwk(
        kid=kid, kty=str(raw.get("kty")), alg=alg if isinstance(alg, str) else "", key=jwk.key
    )


class JwksCache:
    """Keys of one issuer, from a pinned jwks_uri or via OIDC discovery."""

    def __init__(
        self,
        issuer: str,
        fetcher: JsonFetcher,
        clock: Clock,
        *,
        jwks_uri: str = "",
        discovery_url: str = "",
        min_refetch_interval: float = 30.0,
        max_stale_seconds: float = float("inf"),
    ) -> None:
        self._issuer = issuer
        self._fetcher = fetcher
        self._clock = clock
        self._jwks_uri = jwks_uri
        self._discovery_url = discovery_url
        self._min_interval = min_refetch_interval
        self._max_stale = max_stale_seconds
        self._keys: dict[str, PublicJwk] | None = None
        self._fetched_at = float("-inf")
        self._last_attempt = float("-inf")
        self._fetches: SingleFlight[None, None] = SingleFlight()

    @property
    def loaded(self) -> bool:
        return self._keys is not None and not self._expired()

    async def key(self, kid: str) -> PublicJwk | None:
        """The key for `kid` ("" = the issuer's only key), refetching (throttled) when unknown.

        Raises: JwksUnavailableError when no keys were ever fetched and fetching fails.
        """
        found = self._lookup(kid)
        if found is not None:
            return found
        # Throttled even while no keys were ever fetched: a down IdP is not hammered at the
        # request rate; callers get UNAVAILABLE and the background loop keeps retrying.
        if self._fetches.running(None):
            await self._fetches.run(None, self._fetch)  # a fetch is under way: share its result
        elif self._clock.now() - self._last_attempt >= self._min_interval:
            await self.refresh()
        if self._keys is None:
            raise JwksUnavailableError(f"no JWKS for {self._issuer}")
        if self._expired():
            raise JwksUnavailableError(
                f"JWKS for {self._issuer} not refreshed for over {self._max_stale:g} s"
            )
        return self._lookup(kid)

    def cached_key(self, kid: str) -> PublicJwk | None:
        """The key for `kid` from the last fetched set, never fetching (the subject cache's
        check that a cached token's key is still published)."""
        return self._lookup(kid)

    def _expired(self) -> bool:
        return self._clock.now() - self._fetched_at > self._max_stale

    def _lookup(self, kid: str) -> PublicJwk | None:
        if self._keys is None or self._expired():
            return None
        if kid:
            return self._keys.get(kid)
        # A token without a kid is accepted only when the issuer publishes exactly one key.
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    def next_refresh_in(self, interval: float) -> float:
        """Seconds until the background refresh: `interval` after a good fetch, sooner after a
        failed one (so an outage shorter than `max_stale_seconds` never expires the keys)."""
        if self._keys is not None and self._fetched_at >= self._last_attempt:
            return interval
        return max(1.0, min(interval, self._min_interval))

    async def refresh(self) -> None:
        """Fetch now, single-flight: concurrent callers share one request."""
        await self._fetches.run(None, self._fetch)

    async def _fetch(self) -> None:
        self._last_attempt = self._clock.now()
        try:
            uri = self._jwks_uri or await self._discover()
            keys = parse_jwks(await self._fetcher.fetch_json(uri))
        except FetchError as exc:
            log.warning("jwks_fetch_failed", extra={"iss": self._issuer, "error": str(exc)})
            return
        self._keys = keys
        self._fetched_at = self._clock.now()
        log.info("jwks_fetched", extra={"iss": self._issuer, "kids": sorted(keys)})

    async def _discover(self) -> str:
        doc = await self._fetcher.fetch_json(self._discovery_url)
        # OpenID Connect Discovery §4.3: the document's issuer must equal the configured one.
        if not isinstance(doc, dict) or doc.get("issuer") != self._issuer:
            raise FetchError("discovery document issuer does not match the configured issuer")
        uri = doc.get("jwks_uri")
        if not isinstance(uri, str) or not is_secure_url(uri):
            raise FetchError("discovery document has no usable https jwks_uri")
        self._jwks_uri = uri
        return uri
