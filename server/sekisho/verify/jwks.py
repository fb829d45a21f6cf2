"""A JWKS client for downstream servers: caches the key set for the publisher's
`Cache-Control: max-age`, and refetches on an unknown `kid` at most once per `min_refetch_interval`
(an unthrottled refetch would let anyone with garbage tokens make us hammer the issuer).
"""

import re
from collections.abc import Callable
from typing import Any

import aiohttp
import jwt

from sekisho.verify.errors import TokenRejectedError, VerifierUnavailableError

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)
_MAX_JWKS_BYTES = 256 * 1024


def max_age_seconds(cache_control: str, default: float) -> float:
    """The `max-age` directive of a Cache-Control value; `no-store`/`no-cache` mean 0."""
    lowered = cache_control.lower()
    if "no-store" in lowered or "no-cache" in lowered:
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else default


class JwksClient:
    """Fetches and caches one issuer's JWK Set over HTTP(S)."""

    def __init__(
        self,
        jwks_uri: str,
        *,
        clock: Callable[[], float],
        default_max_age: float = 300.0,
        min_refetch_interval: float = 30.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self._uri = jwks_uri
        self._clock = clock
        self._default_max_age = default_max_age
        self._min_refetch = min_refetch_interval
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fresh_until = 0.0
        self._fetched_at: float | None = None
        self.fetch_count = 0

    async def key(self, kid: str) -> jwt.PyJWK:
        """The key with this kid. Raises: TokenRejectedError (unknown kid),
        VerifierUnavailableError (the JWKS cannot be fetched)."""
        now = self._clock()
        stale = now >= self._fresh_until
        if stale or (kid not in self._keys and self._may_refetch(now)):
            await self._fetch(now)
        found = self._keys.get(kid)
        if found is None:
            raise TokenRejectedError("unknown signing key")
        return found

    def _may_refetch(self, now: float) -> bool:
        return self._fetched_at is None or now - self._fetched_at >= self._min_refetch

    async def _fetch(self, now: float) -> None:
        self.fetch_count += 1
        self._fetched_at = now
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.get(self._uri, allow_redirects=False) as response,
            ):
                if response.status != 200:
                    raise VerifierUnavailableError(f"JWKS answered HTTP {response.status}")
                body = await response.content.read(_MAX_JWKS_BYTES + 1)
                cache_control = response.headers.get("Cache-Control", "")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise VerifierUnavailableError(f"JWKS fetch failed: {type(exc).__name__}") from exc
        if len(body) > _MAX_JWKS_BYTES:
            raise VerifierUnavailableError("JWKS document too large")
        self._keys = _parse_keys(body)
        self._fresh_until = now + max_age_seconds(cache_control, self._default_max_age)


def _parse_keys(body: bytes) -> dict[str, jwt.PyJWK]:
    try:
        key_set = jwt.PyJWKSet.from_json(body.decode())
    except (jwt.PyJWKSetError, ValueError, UnicodeDecodeError) as exc:
        raise VerifierUnavailableError("JWKS document is not a JWK Set") from exc
    keys: dict[str, jwt.PyJWK] = {}
    for key in key_set.keys:
        if key.key_id:
            keys[key.key_id] = key
    return keys


def jwks_from_json(document: str | dict[str, Any]) -> dict[str, jwt.PyJWK]:
    """Keys of an inline JWK Set, by kid (for keys configured rather than fetched)."""
    key_set = (
        jwt.PyJWKSet.from_json(document)
        if isinstance(document, str)
        else jwt.PyJWKSet.from_dict(document)
    )
    return {key.key_id: key for key in key_set.keys if key.key_id}
