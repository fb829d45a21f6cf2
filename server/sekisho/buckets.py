"""Token buckets on the injected clock, and a bounded table of them keyed by caller or peer."""

from sekisho.callers import RateLimit
from sekisho.lru import LruMap

MAX_BUCKETS = 10_000


class TokenBucket:
    """`burst` tokens, refilled at `rate_per_second`; each admitted call takes one."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self._limit = limit
        self._tokens = float(limit.burst)
        self._updated = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one will be available."""
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self._limit.burst, self._tokens + elapsed * self._limit.rate_per_second)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self._limit.rate_per_second


class BucketTable:
    """One bucket per key, at most `max_entries` kept (least recently used evicted first), so a
    stream of made-up keys costs bounded memory. An evicted key starts again with a full bucket."""

    def __init__(self, max_entries: int = MAX_BUCKETS) -> None:
        self._buckets: LruMap[str, TokenBucket] = LruMap(max_entries)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, limit: RateLimit, now: float) -> float:
        """0 when `key` may go now, else the seconds until its next token."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(limit, now)
            self._buckets.put(key, bucket)
        return bucket.take(now)
