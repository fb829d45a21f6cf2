"""Histogram observations counted in plain lists and folded into a prometheus-client histogram
at each scrape (docs/operations.md#metrics: one process's own registry only).

prometheus-client's `Histogram.observe` checks its labels and takes two locks (the sum's and the
bucket's) per observation: ~20,000 instructions, four times per exchange
(bench/results/observability_session6.md). `BatchedHistogram.observe` is a bisect and two
additions under one lock; `flush()`, which `Metrics` calls before every render, adds the counts to
the child's buckets and sum, so every scrape reports exactly what observing each value there
would have. Not for the multiprocess mode: a scrape answered by another worker reads this
process's files without running its flush.
"""

import math
import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any


class BatchedHistogram:
    """One labelled histogram child's observations, counted here and copied to it by `flush()`.
    The child is this object's alone: nothing else may observe into it."""

    __slots__ = ("_bounds", "_child", "_counts", "_lock", "_sum")

    def __init__(self, child: Any, bounds: Sequence[float]) -> None:
        """`child`: a prometheus_client Histogram child (`.labels(...)`) of exactly `bounds`."""
        self._child = child
        self._bounds = tuple(float(bound) for bound in bounds)  # +Inf is index len(bounds)
        self._counts = [0] * (len(self._bounds) + 1)  # since the start, like the child's
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, amount: float) -> None:
        """Count `amount` in the first bucket whose upper bound is ≥ it, as Histogram.observe."""
        # NaN is in no bucket (every `amount <= bound` is false) but in the sum, as there.
        index = -1 if math.isnan(amount) else bisect_left(self._bounds, amount)
        with self._lock:
            if index >= 0:
                self._counts[index] += 1
            # One running sum in observation order: the same float the child's own would hold.
            self._sum += amount

    def flush(self) -> None:
        """Copy the counts and sum to the prometheus-client child (its buckets and sum). Under
        the lock: two flushes never interleave, so the child's values never go backwards."""
        with self._lock:
            for value, count in zip(self._child._buckets, self._counts, strict=True):
                value.set(count)  # the bounds in order, then +Inf
            self._child._sum.set(self._sum)
