"""New HTTP connections the guard refused: counted by reason, and reported as at most one WARNING
`http_connections_refused` line per interval (log_throttle.LogThrottle).

A refusal costs an accept, a few dictionary operations and a reset; a log line per refusal would
cost more than that (formatting and scrubbing a JSON line: ~0.18 ms, bench/results/
redteam_session11.md), for a connection that sent nothing. So refusals are counted (the
sekisho_http_connections_refused gauge, sampled) and summed up once per interval, by reason and
by the peer addresses refused most.
"""

import logging

from sekisho.clock import Clock
from sekisho.log_throttle import SUMMARY_INTERVAL, LogThrottle, PeerCounts

log = logging.getLogger(__name__)

# Why a new connection was refused (the `reason` label), in the order the guard checks them.
REASONS = ("connections", "connections_per_peer", "handshakes", "rate_per_peer", "rate")


class ConnectionRefusals:
    """Counts refused connections by reason since start; one summary line per interval."""

    def __init__(self, clock: Clock, interval: float = SUMMARY_INTERVAL) -> None:
        self._throttle = LogThrottle(clock, interval)
        self._unlogged: dict[str, int] = {}
        self._peers = PeerCounts()
        self.counts = dict.fromkeys(REASONS, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def refused(self, reason: str, peer: str) -> None:
        """Count one new connection from `peer` (its address) refused for `reason` (one of
        REASONS)."""
        self.counts[reason] += 1
        self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
        self._peers.add(peer)
        if self._throttle.count() is None:
            return
        log.warning(
            "http_connections_refused",
            extra={
                "refused": self._unlogged,  # by reason, since the last line (the first: this one)
                "interval": self._throttle.interval,
                "peers": self._peers.take(),  # the most refused, by address, since the last line
            },
        )
        self._unlogged = {}
