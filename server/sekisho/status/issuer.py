"""The worker's side of index allocation: a leased range of fresh indexes, and a buffer of minted
tokens flushed to the store in batches.

An index is never reused while a token holding it can be valid: leases only move forward in a
list, lists only roll over to new ids (the store never reissues an id), and a list is forgotten
only after `valid_until` of its last lease, which bounds the exp of every token minted under it.
"""

import asyncio
import logging
from dataclasses import dataclass

from sekisho.clock import Clock
from sekisho.errors import TemporarilyUnavailableError
from sekisho.loops import Loop, LoopFailures
from sekisho.status.models import IssuedToken, Lease
from sekisho.status.store import StatusStore, StatusStoreError

log = logging.getLogger(__name__)
STATUS_FLUSH = Loop("status_flush", "status_flush_failed", log)

MAX_BUFFERED = 1_000_000  # records held while the store is unreachable
PRUNE_EVERY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class StatusReference:
    """Where a token's status lives: the `status.status_list` claim (draft §6.1)."""

    list_id: int
    idx: int
    uri: str

    def claim(self) -> dict[str, object]:
        return {"status_list": {"idx": self.idx, "uri": self.uri}}


@dataclass(frozen=True, slots=True)
class AllocationPolicy:
    """How lists and leases are sized; `max_token_lifetime` includes verifier leeway."""

    list_size: int
    lease_size: int
    lease_seconds: int
    max_token_lifetime: int


class StatusListIssuer:
    """Hands out indexes from this worker's lease and records minted tokens."""

    def __init__(
        self, store: StatusStore, clock: Clock, *, base_uri: str, policy: AllocationPolicy
    ) -> None:
        self._store = store
        self._clock = clock
        self._base_uri = base_uri
        self._policy = policy
        self._lease: Lease | None = None
        self._next = 0
        self._lock = asyncio.Lock()
        self._buffer: list[IssuedToken] = []
        self._pruned_at = 0.0

    def uri(self, list_id: int) -> str:
        return f"{self._base_uri}/{list_id}"

    async def reserve(self) -> StatusReference:
        """A fresh index. Raises: TemporarilyUnavailableError (the store is unreachable)."""
        reference = self._take()
        if reference is not None:
            return reference
        async with self._lock:
            reference = self._take()
            while reference is None:
                await self._renew()
                reference = self._take()
            return reference

    def _take(self) -> StatusReference | None:
        lease = self._lease
        if lease is None or self._next >= lease.end or self._clock.now() >= lease.use_until:
            return None
        idx = self._next
        self._next += 1
        return StatusReference(lease.list_id, idx, self.uri(lease.list_id))

    async def _renew(self) -> None:
        now = int(self._clock.now())
        policy = self._policy
        use_until = now + policy.lease_seconds
        try:
            lease = await asyncio.to_thread(
                self._store.lease,
                now,
                list_size=policy.list_size,
                lease_size=policy.lease_size,
                use_until=use_until,
                valid_until=use_until + policy.max_token_lifetime,
            )
        except StatusStoreError as exc:
            raise TemporarilyUnavailableError(
                "token status is unavailable", log_detail=str(exc)
            ) from exc
        self._lease, self._next = lease, lease.start
        log.info("status_lease_taken", extra={"list_id": lease.list_id, "start": lease.start})

    def issued(self, token: IssuedToken) -> None:
        """Remember a minted token until the next flush."""
        if len(self._buffer) >= MAX_BUFFERED:
            log.error("status_records_dropped", extra={"count": 1})
            return
        self._buffer.append(token)

    async def flush(self) -> None:
        """Write buffered records (marking those a revocation covers). Raises: StatusStoreError."""
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            marked = await asyncio.to_thread(self._store.record, int(self._clock.now()), batch)
        except StatusStoreError:
            self._buffer = batch + self._buffer  # retry next time
            raise
        if marked:
            log.info("status_tokens_marked", extra={"count": marked, "on": "record"})

    async def flush_forever(self, interval: float, failures: LoopFailures) -> None:
        """The background loop: flush, and now and then prune expired state."""
        step, delay = self._flush_and_prune, lambda: interval
        await failures.repeat(STATUS_FLUSH, step, delay, wait_first=True)

    async def _flush_and_prune(self) -> None:
        await self.flush()
        await self._prune()

    async def _prune(self) -> None:
        now = self._clock.now()
        if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = now
            await asyncio.to_thread(self._store.prune, int(now))
