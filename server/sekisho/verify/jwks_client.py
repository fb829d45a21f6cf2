"""sekisho.verify's KeySource: a downstream's JWKS client (Sekisho's, or any issuer's, JWK Set over
HTTP(S)). The caching, refetch and fail-closed rules are jwks.py's JwksCache, the one the server
uses for its IdPs; this class gives it the SDK's defaults and errors (sekisho.verify.errors).
"""

from collections.abc import Callable
from typing import Any

import jwt

from sekisho.clock import CallableClock
from sekisho.urls import is_secure_url
from sekisho.verify.errors import TokenRejectedError, VerifierUnavailableError
from sekisho.verify.fetcher import Document, HttpJsonFetcher
from sekisho.verify.jwks import JwksCache, JwksUnavailableError

# How long a downstream's unknown kid waits for the refetch it triggers, counted from the fetch's
# start (jwks.py's module docstring): a JWKS fetch from a publisher nearby takes milliseconds.
UNKNOWN_KID_WAIT_SECONDS = 1.0


class JwksClient:
    """A downstream's KeySource: Sekisho's (or any issuer's) JWK Set over HTTP(S), cached for
    the publisher's Cache-Control max-age; a JwksCache with the SDK's errors."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        clock: Callable[[], float],
        default_max_age: float = 300.0,
        min_refetch_interval: float = 30.0,
        timeout_seconds: float = 5.0,
        unknown_kid_wait_seconds: float = UNKNOWN_KID_WAIT_SECONDS,
    ) -> None:
        """`unknown_kid_wait_seconds`: how long after the refetch an unknown kid triggers (or
        joins) began it waits for it, then VerifierUnavailableError (jwks.py's module
        docstring);
        `timeout_seconds`: a fetch's own bound, and the wait while no usable set is held.

        Raises: ValueError when `jwks_uri` is not https (plain http only on a loopback host:
            over plain http anyone on the path could serve keys, and so forge tokens), or
            `unknown_kid_wait_seconds` is negative."""
        if not is_secure_url(jwks_uri):
            raise ValueError(f"jwks_uri must be https (http only on loopback): {jwks_uri!r}")
        if unknown_kid_wait_seconds < 0:
            raise ValueError("unknown_kid_wait_seconds must not be negative")
        self._fetcher = _CountingFetcher(HttpJsonFetcher(timeout_seconds, reuse_session=False))
        self._cache = JwksCache(
            jwks_uri,
            self._fetcher,
            CallableClock(clock),
            jwks_uri=jwks_uri,
            min_refetch_interval=min_refetch_interval,
            max_stale_seconds=0.0,
            default_max_age=default_max_age,
            unknown_kid_wait_seconds=unknown_kid_wait_seconds,
        )

    @property
    def fetch_count(self) -> int:
        return self._fetcher.count

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key with this kid. Raises: TokenRejectedError (unknown kid),
        VerifierUnavailableError (the JWKS cannot be fetched)."""
        if not kid:
            raise TokenRejectedError("unknown signing key")
        try:
            found = await self._cache.key(kid)
        except JwksUnavailableError as exc:
            raise VerifierUnavailableError(f"JWKS unavailable: {exc}") from exc
        if found is not None:
            return found.jwk  # type: ignore[no-any-return]
        if self._cache.last_fetch_failed:  # never report an outage as a bad token
            raise VerifierUnavailableError("JWKS fetch failed")
        raise TokenRejectedError("unknown signing key")


class _CountingFetcher:
    """Counts the documents fetched (JwksClient.fetch_count)."""

    def __init__(self, inner: HttpJsonFetcher) -> None:
        self._inner = inner
        self.count = 0

    async def fetch_json(self, url: str) -> Any:
        return (await self.fetch_document(url)).body

    async def fetch_document(self, url: str) -> Document:
        self.count += 1
        return await self._inner.fetch_document(url)
