"""A bounded cache of minted tokens for the gateway, keyed by everything the decision saw.

A token is reused only until `expires_at - margin`, so a downstream never receives one about to
expire. The key holds a SHA-256 of the user's token, never the token itself.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sekisho.clock import Clock
from sekisho.lru import LruMap


@dataclass(frozen=True, slots=True)
class CachedToken:
    token: str
    expires_at: int
    # What a revocation could name for this token (ExchangeResult.revocation_keys).
    covers: tuple[tuple[str, str], ...] = ()
    kid: str = ""  # the signing key; a token whose key left the JWKS is never served


Revoked = Callable[[tuple[tuple[str, str], ...]], bool]
Published = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class CacheStats:
    hits: int
    misses: int
    size: int


def cache_key(subject_token: str, *parts: str) -> str:
    """SHA-256 over the subject token and the request facts policy decided on, each
    length-prefixed: one sequence of parts per key. Joined by NUL, a part holding
    `\x00tool=find` spelled another context's key, and the cache is read before the request is
    validated (red team session 16)."""
    digest = hashlib.sha256()
    for part in (subject_token, *parts):
        encoded = part.encode()
        digest.update(b"%d:%s" % (len(encoded), encoded))
    return digest.hexdigest()


class GatewayTokenCache:
    """LRU with at most `max_entries` tokens; `max_entries = 0` disables caching."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_entries: int,
        margin_seconds: int,
        revoked: Revoked | None = None,
        published: Published | None = None,
    ) -> None:
        self._clock = clock
        # `sekisho revoke` reaches cached tokens: a covered entry is dropped at its next lookup.
        self._revoked = revoked
        # `sekisho keys revoke` too: a token signed by a kid no longer in the JWKS (revoked for
        # a compromise) fails at every downstream; dropped at its next lookup, a fresh one minted.
        self._published = published
        self._max_entries = max_entries
        self._margin = margin_seconds
        self._entries: LruMap[str, CachedToken] = LruMap(max_entries)
        self._generation = 0
        self._hits = 0
        self._misses = 0

    @property
    def clock(self) -> Clock:
        """The clock its expiries are read on (the authorizer's deadlines too)."""
        return self._clock

    @property
    def generation(self) -> int:
        """Changes at every clear(): a token minted before it must not be stored after it."""
        return self._generation

    def clear(self) -> None:
        """Drop every token: the policy or its data changed (a deny-list entry must bite now)."""
        self._generation += 1
        self._entries.clear()

    def get(self, key: str) -> str | None:
        entry = self._entries.peek(key)
        if entry is not None and self._fresh(entry) and self._servable(entry):
            self._entries.get(key)  # a hit: now the most recently used
            self._hits += 1
            return entry.token
        if entry is not None:
            self._entries.pop(key)
        self._misses += 1
        return None

    def drop(self, key: str) -> None:
        """Forget the token under `key` (its user's token no longer verifies)."""
        self._entries.pop(key)

    def put(
        self,
        key: str,
        token: str,
        expires_at: int,
        covers: tuple[tuple[str, str], ...] = (),
        *,
        generation: int | None = None,
        kid: str = "",
    ) -> None:
        """Store a token signed by `kid`; `generation` (read before the exchange began) drops a
        token whose decision predates the last clear()."""
        entry = CachedToken(token=token, expires_at=expires_at, covers=covers, kid=kid)
        if self._max_entries == 0 or not self._fresh(entry):
            return
        if generation is not None and generation != self._generation:
            return
        self._entries.put(key, entry)

    def stats(self) -> CacheStats:
        return CacheStats(hits=self._hits, misses=self._misses, size=len(self._entries))

    @property
    def hits(self) -> int:
        return self._hits

    @property
    def misses(self) -> int:
        return self._misses

    def __len__(self) -> int:
        return len(self._entries)

    def _servable(self, entry: CachedToken) -> bool:
        if self._revoked is not None and self._revoked(entry.covers):
            return False
        return self._published is None or self._published(entry.kid)

    def _fresh(self, entry: CachedToken) -> bool:
        return self._clock.now() < entry.expires_at - self._margin
