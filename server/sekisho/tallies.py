"""The exchange metrics of one process counted in plain ints and lists, and copied into their
prometheus-client children at each scrape (docs/operations.md#monitoring: one process's own
registry only).

prometheus-client's `Counter.inc` and `Histogram.observe` check the metric's state and take a
lock per call (two for an observation): ~8,000 and ~20,000 instructions, and an exchange makes
one count and four observations (bench/results/observability_session6.md). `BatchedTally.record`
counts the whole exchange under one lock: an integer addition for the outcome and a list append
per stage time; the times are put in their buckets and sums in bulk (`BatchedHistogram.fold`),
every 1,024 exchanges and at each `flush()`. `flush()`, which `Metrics` calls before every
render, sets the children's values to the running counts and sums, so every scrape reports
exactly what counting and observing each value there would have. Several workers (the
multiprocess mode) use
`DirectTally`: a scrape answered by another worker reads this process's files without running its
flush, so each count and observation goes to the files at once.
"""

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from functools import reduce
from math import isnan
from operator import add
from typing import Any, Protocol

TOTAL = "total"  # the stage label of the whole exchange's time
_MAX_PENDING = 1024  # exchanges whose times are held before they are folded in


class Tally(Protocol):
    """Where `Metrics` counts an exchange's outcome and observes its stage times."""

    def counter(self, child: Any) -> Any:
        """What `record` takes to count into `child` (a prometheus-client Counter child)."""
        ...

    def record(self, counter: Any, total: float, stages: Iterable[tuple[str, float]]) -> None:
        """Count one exchange into `counter` and observe its total and stage times."""
        ...

    def flush(self) -> None:
        """Bring the prometheus-client children up to date (before a render)."""
        ...


class DirectTally:
    """Every count and observation straight into prometheus-client (the multiprocess mode)."""

    def __init__(self, stage_children: Mapping[str, Any]) -> None:
        """`stage_children`: the stage histogram's child for each stage name and TOTAL."""
        self._stages = dict(stage_children)

    def counter(self, child: Any) -> Any:
        return child

    def record(self, counter: Any, total: float, stages: Iterable[tuple[str, float]]) -> None:
        counter.inc()
        for stage, seconds in stages:
            self._stages[stage].observe(seconds)
        self._stages[TOTAL].observe(total)

    def flush(self) -> None:
        """Nothing to do: the children are always up to date."""


class BatchedCounter:
    """One Counter child's increments, counted here and copied to it by `flush()`. The child
    is this object's alone: nothing else may increment it."""

    __slots__ = ("_child", "count")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.count = 0  # since the start, like the child's

    def flush(self) -> None:
        # Counter.inc() adds 1 to a float that starts at 0.0: the same value, as a float.
        self._child._value.set(float(self.count))


class BatchedHistogram:
    """One Histogram child's observations, counted here and copied to it by `flush()`. The child
    is this object's alone: nothing else may observe into it. Not locked: the owner serializes
    `add`, `pending` and `flush` (BatchedTally's lock)."""

    __slots__ = ("_bounds", "_child", "_counts", "_sum", "pending")

    def __init__(self, child: Any, bounds: Sequence[float]) -> None:
        """`child`: a prometheus_client Histogram child (`.labels(...)`) of exactly `bounds`."""
        self._child = child
        self._bounds = tuple(float(bound) for bound in bounds)  # +Inf is index len(bounds)
        self._counts = [0] * (len(self._bounds) + 1)  # since the start, like the child's
        self._sum = 0.0
        self.pending: list[float] = []  # observed, not yet counted (`fold`), in order

    def add(self, amount: float) -> None:
        """Count `amount` in the first bucket whose upper bound is ≥ it, as Histogram.observe."""
        # NaN is in no bucket (every `amount <= bound` is false) but in the sum, as there.
        if not isnan(amount):
            self._counts[bisect_left(self._bounds, amount)] += 1
        # One running sum in observation order: the same float the child's own would hold.
        self._sum += amount

    def fold(self) -> None:
        """`add` every pending amount, in order, with the Python work done in bulk: the bucket
        counts from the sorted amounts, the sum added in observation order by `reduce`."""
        amounts = self.pending
        if any(map(isnan, amounts)):  # NaN sorts nowhere: one by one
            for amount in amounts:
                self.add(amount)
        elif amounts:
            ordered, below = sorted(amounts), 0
            for index, bound in enumerate(self._bounds):
                upto = bisect_right(ordered, bound)  # amounts ≤ bound: this bucket and below
                self._counts[index] += upto - below
                below = upto
            self._counts[-1] += len(ordered) - below
            self._sum = reduce(add, amounts, self._sum)  # ((sum + a0) + a1) + …, as `add` does
        amounts.clear()

    def flush(self) -> None:
        """Fold, then copy the counts and sum to the child (its buckets and sum)."""
        self.fold()
        for value, count in zip(self._child._buckets, self._counts, strict=True):
            value.set(count)  # the bounds in order, then +Inf
        self._child._sum.set(self._sum)


class BatchedTally:
    """One process's exchange counts and stage times (see the module docstring)."""

    def __init__(self, stage_children: Mapping[str, Any], bounds: Sequence[float]) -> None:
        """`stage_children`: the stage histogram's child (of exactly `bounds`) for each stage
        name and TOTAL."""
        self._lock = threading.Lock()  # a scrape may render from another thread
        self._stages = {name: BatchedHistogram(c, bounds) for name, c in stage_children.items()}
        # Each histogram's own pending list (`fold` clears it in place, never replaces it).
        self._pending = {name: histogram.pending for name, histogram in self._stages.items()}
        self._total = self._pending[TOTAL]
        self._counters: list[BatchedCounter] = []

    def counter(self, child: Any) -> BatchedCounter:
        counter = BatchedCounter(child)
        with self._lock:
            self._counters.append(counter)
        return counter

    def record(
        self, counter: BatchedCounter, total: float, stages: Iterable[tuple[str, float]]
    ) -> None:
        pending = self._pending
        with self._lock:
            counter.count += 1
            for stage, seconds in stages:
                pending[stage].append(seconds)
            self._total.append(total)
            if len(self._total) >= _MAX_PENDING:  # bounds the memory between scrapes
                for histogram in self._stages.values():
                    histogram.fold()

    def flush(self) -> None:
        """Under the lock: two flushes never interleave, so the children never go backwards."""
        with self._lock:
            for histogram in self._stages.values():
                histogram.flush()
            for counter in self._counters:
                counter.flush()
