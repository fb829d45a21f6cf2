"""The caller-side token cache: one entry per (hash of subject token, its declared type,
audience, resources, scopes, token type); an entry is served until `refresh_ahead` before
expiry, and refreshed in the background during that window so callers never wait on a token
that is about to lapse.

The key holds a SHA-256 of the subject token, never the token, so a heap dump of the cache does
not hand out user tokens.
"""

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sekisho.lru import LruMap


@dataclass(frozen=True, slots=True)
class CacheKey:
    subject_hash: str
    audience: str
    resources: tuple[str, ...]
    scopes: tuple[str, ...]
    token_type: str
    # The same token declared an ID token or an access token is checked by other rules (issuer
    # presets, client id claim): a token exchanged as one is not the answer for the other.
    subject_token_type: str
    # The acting agent's token (RFC 8693 actor_token), hashed like the subject's: a token minted
    # with one actor (its `act` claim names it) is never the answer for another actor, or for
    # none. Empty without an actor token.
    actor_hash: str = ""
    actor_token_type: str = ""


def cache_key(
    subject_token: str,
    audience: str,
    resources: tuple[str, ...],
    scopes: tuple[str, ...],
    token_type: str,
    *,
    subject_token_type: str,
    actor_token: str = "",
    actor_token_type: str = "",
) -> CacheKey:
    """Order-insensitive in resources and scopes: the same request in any order hits."""
    digest = hashlib.sha256(subject_token.encode()).hexdigest()
    actor = hashlib.sha256(actor_token.encode()).hexdigest() if actor_token else ""
    return CacheKey(
        digest,
        audience,
        tuple(sorted(resources)),
        tuple(sorted(scopes)),
        token_type,
        subject_token_type,
        actor,
        actor_token_type if actor_token else "",
    )


@dataclass(frozen=True, slots=True)
class ExchangedToken:
    """A token Sekisho issued, as the caller sees it."""

    access_token: str
    issued_token_type: str
    token_type: str
    expires_at: float
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    audience: str
    jti: str
    decision_id: str
    # The token's `status` claim (draft-ietf-oauth-status-list), read when the client checks status.
    status: Mapping[str, Any] | None = None


# When full, expired entries are swept at most this often (seconds): a sweep reads every entry,
# and a full cache of live tokens (a gateway with many users) must not pay that on every put.
SWEEP_INTERVAL_SECONDS = 1.0


class TokenCache:
    """A bounded LRU (lru.LruMap) of ExchangedToken by CacheKey; the clock is passed in, not
    read. When full, expired tokens go first (swept when one may have expired, at most once per
    SWEEP_INTERVAL_SECONDS), then the least recently used."""

    def __init__(self, *, refresh_ahead_seconds: float, max_entries: int = 10_000) -> None:
        self._entries: LruMap[CacheKey, ExchangedToken] = LruMap(max_entries)
        self._refresh_ahead = refresh_ahead_seconds
        self._earliest_expiry = float("inf")  # no held token expires before it
        self._last_sweep = float("-inf")
        self.hits = 0
        self.misses = 0

    @property
    def max_entries(self) -> int:
        return self._entries.max_entries

    def get(self, key: CacheKey, now: float) -> tuple[ExchangedToken | None, bool]:
        """(token still usable or None, whether it is due for refresh)."""
        token = self._entries.get(key)
        if token is None or now >= token.expires_at:
            self._entries.pop(key)
            self.misses += 1
            return None, True
        self.hits += 1
        return token, now >= token.expires_at - self._refresh_ahead

    def put(self, key: CacheKey, token: ExchangedToken, now: float) -> None:
        if (
            len(self._entries) >= self._entries.max_entries
            and now >= self._earliest_expiry
            and now >= self._last_sweep + SWEEP_INTERVAL_SECONDS
        ):
            self._sweep(now)
        self._entries.put(key, token)
        self._earliest_expiry = min(self._earliest_expiry, token.expires_at)

    def _sweep(self, now: float) -> None:
        """Drop the expired entries and note when the next one expires."""
        earliest = float("inf")
        expired = []
        for held, token in self._entries.items():
            if token.expires_at <= now:
                expired.append(held)
            else:
                earliest = min(earliest, token.expires_at)
        for stale in expired:
            self._entries.pop(stale)
        self._earliest_expiry, self._last_sweep = earliest, now

    def drop(self, key: CacheKey) -> None:
        """Forget one entry (its token was revoked)."""
        self._entries.pop(key)

    def keys_holding(self, access_token: str) -> list[CacheKey]:
        """The keys whose entry is `access_token` (a downstream refused it). A scan of at most
        max_entries: for the rare refusal, not the hot path."""
        return [key for key, token in self._entries.items() if token.access_token == access_token]

    @property
    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
