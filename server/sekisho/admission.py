"""Overload protection, applied once per exchange whatever the transport (issue 7 item 6).

- A bound on exchanges in progress in this worker: one more is refused at once with `slow_down`
  (RESOURCE_EXHAUSTED / HTTP 429 + Retry-After) instead of queueing, so latency stays bounded
  and the queue cannot collapse the process under load.
- A CPU bound: when this worker has used more than `max_cpu_fraction` of a core over the last
  half second, new exchanges are refused the same way. The count alone cannot shed load from a
  CPU-bound worker: grpc accepts a call only when the event loop gets to it, so under overload
  the queue builds inside grpc core, where no handler sees it (bench/results/overload.md), while
  refusing costs ~1/20th of an exchange and lets the loop drain that queue. Process CPU time,
  not time spent in exchanges, so exchanges waiting on I/O (OPA, KMS) never count as load.
- A token bucket per caller id ([[callers]] rate, else the server default), on the injected
  clock. Buckets are kept for at most `max_buckets` ids, least recently used evicted first.

Every worker is one asyncio loop, so no locking is needed.
"""

import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping

from sekisho.callers import RateLimit
from sekisho.clock import Clock
from sekisho.errors import SlowDownError
from sekisho.models import Caller

MAX_BUCKETS = 10_000
CPU_WINDOW_SECONDS = 0.5


class CpuLoad:
    """The fraction of one core this process used, sustained over the last full `window` and
    the part of the current one so far (the lower of the two: a start-up spike is not load)."""

    def __init__(
        self, clock: Clock, cpu_time: Callable[[], float], window: float = CPU_WINDOW_SECONDS
    ) -> None:
        self._clock = clock
        self._cpu_time = cpu_time
        self._window = window
        self._started, self._cpu_at_start = clock.now(), cpu_time()
        self._previous = 0.0

    def fraction(self) -> float:
        now, cpu = self._clock.now(), self._cpu_time()
        elapsed, used = now - self._started, cpu - self._cpu_at_start
        if elapsed >= self._window:
            self._previous = used / elapsed
            self._started, self._cpu_at_start = now, cpu
            return self._previous
        # The part of the window not yet covered is assumed to run at the previous rate.
        return min(
            self._previous, (used + self._previous * (self._window - elapsed)) / self._window
        )


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


class Admission:
    """Admits an exchange or raises SlowDownError; tracks how many are in progress."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_in_flight: int,
        default_rate: RateLimit | None = None,
        rates: Mapping[str, RateLimit] | None = None,
        max_buckets: int = MAX_BUCKETS,
        max_cpu_fraction: float = 0.0,
        cpu_time: Callable[[], float] = time.process_time,
    ) -> None:
        self._clock = clock
        self._max_in_flight = max_in_flight
        self._max_cpu = max_cpu_fraction
        self._cpu = CpuLoad(clock, cpu_time)
        self._default = default_rate
        self._rates = dict(rates or {})
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Exchanges admitted and not yet finished."""
        return self._in_flight

    @contextlib.contextmanager
    def admit(self, caller: Caller) -> Iterator[None]:
        """Hold one in-flight slot for the body. Raises: SlowDownError (bound or rate hit)."""
        if self._in_flight >= self._max_in_flight:
            raise SlowDownError(
                "too many exchanges in progress; retry shortly",
                log_detail=f"in-flight bound {self._max_in_flight} reached",
                metadata={"retry_after": "1"},
            )
        if self._max_cpu and (load := self._cpu.fraction()) > self._max_cpu:
            raise SlowDownError(
                "the server is at capacity; retry shortly",
                log_detail=f"worker CPU {load:.2f} over max_cpu_fraction {self._max_cpu}",
                metadata={"retry_after": "1"},
            )
        self._take_token(caller.id)
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    def _take_token(self, caller_id: str) -> None:
        limit = self._rates.get(caller_id, self._default)
        if limit is None or limit.rate_per_second <= 0:
            return
        now = self._clock.now()
        bucket = self._buckets.get(caller_id)
        if bucket is None:
            bucket = self._buckets[caller_id] = TokenBucket(limit, now)
            if len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(caller_id)
        wait = bucket.take(now)
        if wait:
            raise SlowDownError(
                "rate limit exceeded; slow down",
                log_detail=f"caller {caller_id!r} over {limit.rate_per_second}/s",
                metadata={"retry_after": str(max(1, math.ceil(wait)))},
            )
