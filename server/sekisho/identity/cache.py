"""Verified-subject cache: an inbound token that verified once is not verified again until it
expires.

Key: SHA-256 of the token type and the token bytes, so the same JWT presented as an id_token and
as an access token (different claim rules) never shares an entry. Value: the VerifiedToken plus
the issuer key that verified it. An entry is served until the earliest of the token's `exp` and
`max_seconds` after it was verified, and only while the issuer's JWKS cache still holds that same
key: once the IdP removes (or replaces) the key, the next JWKS refresh drops every token it signed
from service, so a cached token outlives its key's removal by at most `trust.jwks_cache_seconds`,
exactly as an uncached one would. Failures are never cached. Bounded LRU.
"""

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from sekisho.clock import Clock
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.lru import LruMap
from sekisho.models import VerifiedToken


@dataclass(frozen=True, slots=True)
class _Entry:
    token: VerifiedToken
    kid: str
    key: object  # the public key object that verified the signature
    valid_until: float


def _digest(token: str, token_type: str) -> bytes:
    return hashlib.sha256(f"{token_type}\n{token}".encode()).digest()


def _kid_of(token: str) -> str:
    """The header's kid of a token that already verified (so the header is well-formed)."""
    header = token.split(".", 1)[0]
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    kid = decoded.get("kid", "")
    return kid if isinstance(kid, str) else ""


class CachingTokenVerifier:
    """TokenVerifier with a bounded cache of successful verifications (subject and actor)."""

    def __init__(
        self,
        verifier: TokenVerifier,
        issuers: Mapping[str, TrustedIssuer],
        clock: Clock,
        *,
        max_entries: int,
        max_seconds: int,
    ) -> None:
        self._verifier = verifier
        self._issuers = dict(issuers)
        self._clock = clock
        self._max_entries = max_entries
        self._max_seconds = max_seconds
        self._entries: LruMap[bytes, _Entry] = LruMap(max_entries)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def verify(self, token: str, token_type: str) -> VerifiedToken:
        """Same contract as TokenVerifier.verify.

        Raises: InvalidRequestError, InvalidTokenError, TemporarilyUnavailableError.
        """
        if self._max_entries <= 0:
            return await self._verifier.verify(token, token_type)
        digest = _digest(token, token_type)
        cached = self._fresh(digest)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        verified = await self._verifier.verify(token, token_type)
        self._store(digest, token, verified)
        return verified

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    def _fresh(self, digest: bytes) -> VerifiedToken | None:
        entry = self._entries.peek(digest)
        if entry is None:
            return None
        if self._clock.now() >= entry.valid_until or not self._key_still_published(entry):
            self._entries.pop(digest)
            return None
        self._entries.get(digest)  # a hit: now the most recently used
        return entry.token

    def _key_still_published(self, entry: _Entry) -> bool:
        issuer = self._issuers.get(entry.token.issuer)
        if issuer is None:
            return False
        current = issuer.jwks.cached_key(entry.kid)
        return current is not None and current.key == entry.key

    def _store(self, digest: bytes, token: str, verified: VerifiedToken) -> None:
        issuer = self._issuers.get(verified.issuer)
        kid = _kid_of(token)
        key = issuer.jwks.cached_key(kid) if issuer is not None else None
        if key is None:
            return
        valid_until = min(float(verified.expires_at), self._clock.now() + self._max_seconds)
        self._entries.put(digest, _Entry(verified, kid, key.key, valid_until))
