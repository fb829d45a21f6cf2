"""CoDel on the wait a call spent before it reached admission (issue 14 item 1).

Under CPU saturation grpc.aio takes new calls from grpc core only as fast as the event loop
frees up, so the backlog of an overloaded worker waits inside grpc core, where no handler sees
it; once formed, it stands: the worker then answers every call about as late as the queue is
long (bench/results/overload.md). Nothing in grpc tells when a call arrived, but its deadline
does: callers on one connection (or with one caller id) use the same timeout, so the largest
budget a flow presented lately is its fresh budget, and a call arriving with less has waited
the difference.

As in CoDel (Nichols and Jacobson, "Controlling Queue Delay", 2012), a wait above the target is
tolerated for one `interval` (a burst); if it persists, calls that have waited more than the
target are refused at once (cheap) until a call arrives within the target again. The backlog
drains at the speed of refusals, an order of magnitude faster than exchanges. The target is a
quarter of the flow's budget, at most `max_target` ([overload] max_queue_delay_seconds): a
queue that leaves callers most of their time is saturation, not overload (32 or 256 callers in
a closed loop with long timeouts are served, not refused), while one that would eat their
deadline is drained.
"""

from sekisho.lru import LruMap

INTERVAL = 0.1  # CoDel's interval: how long a standing queue is tolerated
MEMORY = 5.0  # how long a flow's largest budget is remembered
MAX_FLOWS = 10_000
BUDGET_SHARE = 0.25  # of a flow's fresh budget a wait may take before it counts as standing


class StandingQueue:
    """Estimates each call's wait before admission and says when to refuse it."""

    def __init__(self, max_target: float, *, interval: float = INTERVAL) -> None:
        self._max_target = max_target
        self._interval = interval
        # flow → (its largest recent budget, when seen); the least recently seen flow goes first.
        self._fresh: LruMap[str, tuple[float, float]] = LruMap(MAX_FLOWS)
        self._above_since: float | None = None

    def waited(self, flow: str, budget: float, now: float) -> tuple[float, float]:
        """The estimated wait of a call of `flow` arriving with `budget` seconds left, and the
        flow's fresh budget."""
        fresh, seen_at = self._fresh.peek(flow) or (0.0, now)
        if budget >= fresh or now - seen_at > MEMORY:
            fresh, seen_at = budget, now
        self._fresh.put(flow, (fresh, seen_at))
        return fresh - budget, fresh

    def refuse(self, waited: float, fresh: float, now: float) -> bool:
        """Whether a call that waited `waited` seconds of a `fresh` budget is refused now."""
        if waited <= min(self._max_target, BUDGET_SHARE * fresh):
            self._above_since = None
            return False
        if self._above_since is None:
            self._above_since = now
        return now - self._above_since >= self._interval
