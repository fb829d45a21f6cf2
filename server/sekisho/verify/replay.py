"""jti replay caches: remember a token id until the token expires and refuse a second use.

The MCP Enterprise-Managed Authorization profile REQUIRES an authorization server to reject a
re-used ID-JAG `jti` at least until `exp` (stricter than RFC 7523 §3's MAY); Sekisho's token
endpoint uses the same caches for RFC 7523 client assertions. Keys are scoped by issuer, so two
issuers' `jti` spaces never collide. A cache that cannot answer raises
`ReplayCacheUnavailableError`: the caller must refuse the token, never accept it.
"""

import hashlib
import heapq
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import redis.asyncio


class ReplayCacheUnavailableError(Exception):
    """The replay cache could not be consulted; the token must be refused (fail closed)."""


class ReplayCache(Protocol):
    """Records first uses of (issuer, jti)."""

    async def first_use(self, issuer: str, jti: str, expires_at: int, now: float) -> bool:
        """True the first time (issuer, jti) is seen before `expires_at`; False on a replay.

        Raises: ReplayCacheUnavailableError.
        """
        ...


def replay_key(issuer: str, jti: str) -> str:
    """A fixed-length key: a hash, so attacker-chosen jti values cannot bloat keys."""
    return hashlib.sha256(f"{issuer}\x00{jti}".encode()).hexdigest()


class InMemoryReplayCache:
    """For one process. Entries are purged once their token has expired.

    A dict answers lookups; a min-heap of (expiry, key) orders the entries by expiry, so a purge
    pops only the expired ones (O(log n) each, every entry pushed and popped once) instead of
    scanning every entry: once full of live entries, each new jti scanned all 1,000,000 of them
    before it was refused (red team session 13). A key stored again after it expired leaves its
    old heap entry behind; such stale entries are dropped as they expire, and the heap is rebuilt
    from the dict when it holds twice the bound (amortised O(1) per insert)."""

    def __init__(self, max_entries: int = 1_000_000) -> None:
        self._seen: dict[str, float] = {}
        self._by_expiry: list[tuple[float, str]] = []
        self._max_entries = max_entries

    async def first_use(self, issuer: str, jti: str, expires_at: int, now: float) -> bool:
        key = replay_key(issuer, jti)
        expiry = self._seen.get(key)
        # Inclusive, like the Redis cache's EXAT exp + 1: the verifier still accepts a token at
        # now == exp + leeway, so it must still be remembered then.
        if expiry is not None and expiry >= now:
            return False
        if len(self._seen) >= self._max_entries:
            self._purge(now)
        if len(self._seen) >= self._max_entries:
            # Full of live entries: refusing is safe, forgetting one could admit a replay.
            raise ReplayCacheUnavailableError("replay cache is full")
        # No await between the lookup and the insert: atomic on one event loop.
        stored = float(expires_at)
        self._seen[key] = stored
        heapq.heappush(self._by_expiry, (stored, key))
        if len(self._by_expiry) > 2 * self._max_entries:
            self._by_expiry = [(exp, k) for k, exp in self._seen.items()]
            heapq.heapify(self._by_expiry)
        return True

    def _purge(self, now: float) -> None:
        """Drop every entry that expired before `now` (the entries kept: expiry >= now)."""
        heap = self._by_expiry
        while heap and heap[0][0] < now:
            expiry, key = heapq.heappop(heap)
            # A stale heap entry (the key was stored again) matches its dict entry only when
            # both expiries are equal: then that one has expired too.
            if self._seen.get(key) == expiry:
                del self._seen[key]


class RedisReplayCache:
    """For several replicas: one `SET key NX EXAT exp` per token, atomic in Redis."""

    def __init__(self, client: "redis.asyncio.Redis", prefix: str = "sekisho:jti:") -> None:
        self._client = client
        self._prefix = prefix

    async def first_use(self, issuer: str, jti: str, expires_at: int, now: float) -> bool:
        import redis.exceptions

        # Keep the entry one second past exp so a token at the exact expiry edge stays refused.
        expire_at = max(expires_at, int(now)) + 1
        try:
            stored = await self._client.set(
                self._prefix + replay_key(issuer, jti), b"1", nx=True, exat=expire_at
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            raise ReplayCacheUnavailableError(f"redis: {type(exc).__name__}") from exc
        return bool(stored)
