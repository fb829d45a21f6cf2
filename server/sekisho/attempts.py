"""Bounds on work done for a peer that has not authenticated yet (issue 14 item 2).

A client-secret check costs an argon2id hash (64 MiB, t=3: tens of milliseconds of CPU); anyone
who can reach the token endpoint can ask for one. Before any hashing, an attempt must fit:

- in the attempts running or waiting, per peer address and in total, and
- in the attempts started per second (token buckets), per peer address and in total.

Otherwise it is refused at once with slow_down (HTTP 429 + Retry-After), which costs a few
dictionary operations. The bounds apply before the client id is looked up, so known and unknown
ids are treated alike (no enumeration through who gets throttled).

A private_key_jwt client assertion costs one signature verification (~0.1 ms of CPU) and is
checked synchronously, so its gate (`admit`, a second AttemptGate with its own budgets) holds no
slot: it bounds only the assertions started per second, per peer and in total, before the
assertion is parsed or any key is looked up (docs/security.md, "Unauthenticated cost").
"""

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

from sekisho.buckets import BucketTable
from sekisho.callers import RateLimit
from sekisho.clock import Clock
from sekisho.errors import SlowDownError

_ALL = ""  # the global bucket's key (peer addresses are never empty)


@dataclass(frozen=True, slots=True)
class AttemptLimits:
    """[client_auth] bounds, built by protection.attempt_limits / assertion_limits (defaults:
    protection_config.ClientAuthLimitsConfig)."""

    max_concurrent: int
    max_concurrent_per_peer: int
    rate: RateLimit
    rate_per_peer: RateLimit


class AttemptGate:
    """Admits or refuses one unauthenticated attempt from a peer."""

    def __init__(self, clock: Clock, limits: AttemptLimits, *, max_peers: int = 10_000) -> None:
        self._clock = clock
        self._limits = limits
        self._total = 0
        self._per_peer: dict[str, int] = {}  # only peers with attempts running: ≤ max_concurrent
        self._global = BucketTable(1)
        self._peers = BucketTable(max_peers)
        self.refused = 0

    @contextlib.contextmanager
    def attempt(self, peer: str) -> Iterator[None]:
        """Hold one attempt slot for the body. Raises: SlowDownError."""
        self.acquire(peer)
        try:
            yield
        finally:
            self.release(peer)

    def acquire(self, peer: str) -> None:
        """Take one attempt slot for `peer`. Raises: SlowDownError (nothing taken)."""
        peer = peer or "unknown"
        limits = self._limits
        if self._total >= limits.max_concurrent:
            self._refuse("too many client authentications in progress", peer, 1.0)
        if self._per_peer.get(peer, 0) >= limits.max_concurrent_per_peer:
            self._refuse("too many client authentications in progress from this peer", peer, 1.0)
        self._take_rates(peer)
        self._total += 1
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1

    def admit(self, peer: str) -> None:
        """Count one attempt whose work runs synchronously, holding no slot (per-second budgets
        only). Raises: SlowDownError."""
        self._take_rates(peer or "unknown")

    def _take_rates(self, peer: str) -> None:
        now = self._clock.now()
        if wait := self._peers.take(peer, self._limits.rate_per_peer, now):
            self._refuse("client authentication rate from this peer exceeded", peer, wait)
        if wait := self._global.take(_ALL, self._limits.rate, now):
            self._refuse("client authentication rate exceeded", peer, wait)

    def release(self, peer: str) -> None:
        """Give back the slot `acquire` took."""
        peer = peer or "unknown"
        self._total -= 1
        if self._per_peer[peer] <= 1:
            del self._per_peer[peer]
        else:
            self._per_peer[peer] -= 1

    def _refuse(self, detail: str, peer: str, wait: float) -> None:
        self.refused += 1
        raise SlowDownError(
            "too many authentication attempts; slow down",
            # The audit line's `detail`: it names no caller (none is authenticated yet), so the
            # peer's address says who was refused. Not in the public message.
            log_detail=f"{detail} (peer {peer})",
            metadata={"retry_after": str(max(1, math.ceil(wait)))},
        )
