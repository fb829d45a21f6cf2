"""One summary line per interval for an event that can recur thousands of times a second (a
flood of refused requests): each occurrence is counted, and a line is due at the first occurrence
and then at the first one an interval after the previous line, carrying the count since it.

The gRPC admission gate's `overload_shed` (rpc/admission_gate.py), the HTTP listeners'
`http_bad_requests` (http/protocol_log.py) and `http_connections_refused` (http/refusals.py), and
the Status List endpoints' `status_list_unavailable` (http/statuslist.py) are written through it.
"""

from sekisho.clock import Clock

SUMMARY_INTERVAL = 10.0  # seconds between two summary lines of one event while it recurs


class LogThrottle:
    """Counts occurrences of one event and says when its next summary line is due."""

    def __init__(self, clock: Clock, interval: float = SUMMARY_INTERVAL) -> None:
        self._clock = clock
        self.interval = interval
        self._next = 0.0
        self._unlogged = 0

    def count(self) -> int | None:
        """Count one occurrence. Returns the occurrences since the last line (this one included)
        when a line is due now, else None."""
        self._unlogged += 1
        now = self._clock.now()
        if now < self._next:
            return None
        unlogged, self._unlogged = self._unlogged, 0
        self._next = now + self.interval
        return unlogged
