"""An adaptive limit on exchanges running at once in one worker (issue 14 item 1).

The design follows Envoy's adaptive concurrency filter (a gradient against a periodically
re-measured minimum round-trip time) rather than Netflix's Gradient2 (a long-term EWMA, which
drifts upwards under steady load) or a fixed CPU threshold (binary: sheds everything at once):

    gradient = clamp(tolerance * min_rtt / sample_rtt, 0.5, 2.0)
    limit    = clamp(limit * gradient (+1 when gradient >= 1), min, max)

`rtt` is measured from the moment an exchange is granted its slot to the moment it releases it,
so it includes the wait of a woken exchange in the event loop's ready queue. For CPU-bound work
(embedded policy, file keys) that wait grows with every extra slot while throughput does not:
the gradient settles the limit at one or two slots, which keeps the loop free to answer (and
cheaply refuse) new calls. For I/O-bound work (OPA server, KMS) latency stays flat as slots are
added, and the limit grows to keep the backends busy.

`min_rtt` is re-measured every `MIN_RTT_INTERVAL` seconds with the limit pinned to its minimum
for `MIN_RTT_SAMPLES` exchanges (Envoy's min-RTT window), so the baseline follows the real
unloaded latency instead of ratcheting.
"""

import math
import statistics

from sekisho.clock import Clock

WINDOW_SAMPLES = 20
MIN_RTT_SAMPLES = 20
MIN_RTT_INTERVAL = 30.0
MIN_GRADIENT, MAX_GRADIENT = 0.5, 2.0


class GradientLimit:
    """The current concurrency limit, updated from measured exchange round trips."""

    def __init__(
        self, clock: Clock, *, minimum: int, maximum: int, tolerance: float, initial: int = 0
    ) -> None:
        self._clock = clock
        self._min, self._max = minimum, max(minimum, maximum)
        self._tolerance = tolerance
        self._limit = float(initial or minimum)
        self._min_rtt: float | None = None
        self._next_min_rtt = 0.0  # measure at once
        self._samples: list[float] = []
        self._busiest = 0  # most exchanges in flight at a sample this window
        self.mean_rtt = 0.0  # EWMA of every sample: the queue's service-time estimate

    @property
    def measuring_min_rtt(self) -> bool:
        """Whether the limit is pinned to its minimum to re-measure the unloaded latency."""
        return self._min_rtt is None or self._clock.now() >= self._next_min_rtt

    @property
    def slots(self) -> int:
        """Exchanges that may run at once now."""
        if self.measuring_min_rtt:
            return self._min
        return max(self._min, min(self._max, math.floor(self._limit)))

    def sample(self, rtt: float, in_flight: int = 0) -> None:
        """Record one exchange's slot-held time and how many were in flight when it ended;
        adjust the limit at the end of a window."""
        self.mean_rtt = rtt if not self.mean_rtt else 0.9 * self.mean_rtt + 0.1 * rtt
        self._samples.append(rtt)
        self._busiest = max(self._busiest, in_flight)
        if self.measuring_min_rtt:
            if len(self._samples) >= MIN_RTT_SAMPLES:
                self._min_rtt = statistics.median(self._samples)
                self._next_min_rtt = self._clock.now() + MIN_RTT_INTERVAL
                self._samples.clear()
            return
        if len(self._samples) >= WINDOW_SAMPLES:
            self._update(statistics.median(self._samples))
            self._samples.clear()
            self._busiest = 0

    def _update(self, sample_rtt: float) -> None:
        assert self._min_rtt is not None
        gradient = self._tolerance * self._min_rtt / max(sample_rtt, 1e-9)
        gradient = min(MAX_GRADIENT, max(MIN_GRADIENT, gradient))
        limit = self._limit * gradient
        # Grow only a limit that was used (Netflix's "app-limited" rule): a limit no traffic
        # reaches says nothing about latency, and would let a burst in all at once.
        if gradient >= 1.0 and self._busiest + 1 >= math.floor(self._limit) / 2:
            limit += 1.0
        limit = min(limit, max(self._limit, 2.0 * (self._busiest + 1)))
        self._limit = min(float(self._max), max(float(self._min), limit))
