"""LoopFailures that keeps its counts, for tests of the background loops."""

from collections import Counter

from sekisho.loops import LoopFailures


class RecordedFailures(LoopFailures):
    """Counts failed iterations by loop name in `counts` (what the metric would show)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        super().__init__(self._record)

    def _record(self, loop: str) -> None:
        self.counts[loop] += 1
