"""One summary line per interval for an event that can recur thousands of times a second (a
flood of refused requests): each occurrence is counted, and a line is due at the first occurrence
and then at the first one an interval after the previous line, carrying the count since it.

The gRPC admission gate's `overload_shed` (rpc/admission_gate.py), the HTTP listeners'
`http_bad_requests` (http/protocol_log.py) and `http_connections_refused` (http/refusals.py), and
the Status List endpoints' `status_list_unavailable` (http/statuslist.py) are written through it.
The two lines about refusals for capacity or rate (`overload_shed`, `http_connections_refused`)
also name who was refused: PeerCounts, the peers' network addresses (never a credential, and no
caller identity: these refusals come before the caller is authenticated).
"""

from sekisho.clock import Clock

SUMMARY_INTERVAL = 10.0  # seconds between two summary lines of one event while it recurs
MAX_PEERS = 64  # distinct peers counted between two lines (the least counted gives way)
TOP_PEERS = 5  # peers a line names, most refused first; the rest are summed under OTHER
OTHER = "other"


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


class PeerCounts:
    """Refusals by peer address since the last summary line, for that line to name the peers
    most refused. Bounded: at most MAX_PEERS addresses are counted between two lines. When all
    places are taken, a new address takes the place of the least counted one and its count plus
    one (Space-Saving, Metwally et al. 2005): every address refused more than 1/MAX_PEERS of the
    interval's refusals is named, and a count is at most that many too high. Places went to the
    first addresses of the interval before, so one refusal from each of 64 decoy addresses just
    after a line hid the flood that followed under OTHER (red team session 13b)."""

    def __init__(self, max_peers: int = MAX_PEERS) -> None:
        self._max_peers = max_peers
        self._counts: dict[str, int] = {}

    def add(self, peer: str) -> None:
        """Count one refusal of `peer` (its address; "" when the transport named none)."""
        peer = peer or "unknown"
        counts = self._counts
        if peer in counts:
            counts[peer] += 1
        elif len(counts) < self._max_peers:
            counts[peer] = 1
        else:
            least = min(counts, key=counts.__getitem__)
            counts[peer] = counts.pop(least) + 1

    def take(self) -> dict[str, int]:
        """The TOP_PEERS most refused peers with their counts, then OTHER (every other refusal)
        when there was any; starts counting afresh."""
        ranked = sorted(self._counts.items(), key=lambda item: item[1], reverse=True)
        top = dict(ranked[:TOP_PEERS])
        other = sum(count for _, count in ranked[TOP_PEERS:])
        self._counts = {}
        return top | {OTHER: other} if other else top
