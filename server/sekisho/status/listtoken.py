"""Status List Tokens (draft-ietf-oauth-status-list §5.1): a JWT with `typ: statuslist+jwt`,
`sub` = the list's URI, `iat`, `exp`, `ttl` and `status_list {bits, lst, aggregation_uri}`,
signed by the service's active key, so the JWKS that verifies minted tokens verifies it too.

A signed list is reused for at most `rebuild_seconds` of the injected clock, so a revocation shows
within that plus the store write; verifiers then see it within the list's `ttl`.

Anyone may ask for any list id, unauthenticated: concurrent requests for one list share one store
read and one signature (single-flight), and a bounded number of store reads run at once for these
requests; past that a request is refused (503, retry) instead of queueing. The store is read in
the event loop's default thread pool, which the revocation gate's refresh and the keyring's
reload share: a flood of reads for made-up ids behind a slow store (Redis across a network, or
stalled) would otherwise queue ahead of the gate's refresh until its view went stale and every
exchange was refused (bench/results/redteam_session10.md).

The bound is split. Lists known to be live (built here lately, or among the store's live lists
as last read, at most LIVE_LISTS_REFRESH_SECONDS ago when an unknown id asks) have
MAX_STORE_READS places; any other id, and the list of lists, MAX_UNKNOWN_STORE_READS. A flood of
made-up ids then fills only the second, and downstreams fetching real lists keep being served:
with one shared bound, 4-7 of 10 such fetches were refused during a flood (red team session
14). A list leased by another replica a moment ago is unknown here until the next read of the
live lists (one second at most, as often as unknown ids ask), and is read meanwhile as unknown.
"""

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from sekisho.clock import Clock
from sekisho.constants import TYP_STATUS_LIST
from sekisho.signing.jws import JwsEncoder
from sekisho.signing.keyring import Keyring
from sekisho.singleflight import SingleFlight
from sekisho.status.bitlist import INVALID, SUSPENDED, StatusList, pack
from sekisho.status.models import ListSnapshot
from sekisho.status.store import StatusStore

log = logging.getLogger(__name__)
T = TypeVar("T")

# Store reads on behalf of these requests at once, for lists known to be live and for any other
# id: together fewer than the default thread pool's workers (min(32, CPUs + 4) >= 5), so the
# gate's refresh and the keyring's reload always find one.
MAX_STORE_READS = 2
MAX_UNKNOWN_STORE_READS = 1
# How old the live lists read from the store may be before an unknown id reads them again.
LIVE_LISTS_REFRESH_SECONDS = 1.0


class StatusReadsSaturatedError(Exception):
    """The reads this request may use are all in flight: answer 503 at once (no log line: this
    is a flood)."""


class _Reads:
    """At most `places` store reads at once in the default thread pool; no queue."""

    __slots__ = ("_in_flight", "_places")

    def __init__(self, places: int) -> None:
        self._places = places
        self._in_flight = 0

    async def run(self, read: Callable[[], T]) -> T:
        """Raises: StatusReadsSaturatedError, and what `read` raises."""
        if self._in_flight >= self._places:
            raise StatusReadsSaturatedError
        self._in_flight += 1
        try:
            return await asyncio.to_thread(read)
        finally:
            self._in_flight -= 1


def entry_statuses(snapshot: ListSnapshot, bits: int) -> Iterator[tuple[int, int]]:
    """(idx, status) of every entry that is not VALID; INVALID wins over SUSPENDED (it is final).

    A 1-bit list cannot hold SUSPENDED (draft §4.1): a suspended entry is then served as INVALID,
    failing closed for downstreams (`sekisho revoke suspend` refuses bits = 1; this is a service
    whose config differs from the command's).
    """
    suspended = SUSPENDED if bits > 1 else INVALID
    for idx in snapshot.suspended - snapshot.invalid:
        yield idx, suspended
    for idx in snapshot.invalid:
        yield idx, INVALID


# How long a signed list is served again before it is rebuilt from the store (status/propagation.py
# counts it in how soon a mark shows).
LIST_REBUILD_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ListTiming:
    """`ttl` (how long verifiers may cache a list) and `exp - iat` of a served list."""

    ttl_seconds: int
    lifetime_seconds: int
    rebuild_seconds: float = LIST_REBUILD_SECONDS


@dataclass(frozen=True, slots=True)
class _Built:
    token: str
    built_at: float


class StatusListTokens:
    """Builds, signs and briefly caches the Status List Token of each list."""

    def __init__(
        self,
        store: StatusStore,
        keyring: Keyring,
        clock: Clock,
        *,
        issuer: str,
        base_uri: str,
        bits: int,
        timing: ListTiming,
    ) -> None:
        self._store = store
        self._keyring = keyring
        self._clock = clock
        self._issuer = issuer
        self._base_uri = base_uri
        self._bits = bits
        self._timing = timing
        self._encoder = JwsEncoder()
        self._built: dict[int, _Built] = {}
        self._flights: SingleFlight[int, str | None] = SingleFlight()
        self._live_reads = _Reads(MAX_STORE_READS)
        self._unknown_reads = _Reads(MAX_UNKNOWN_STORE_READS)
        self._live: frozenset[int] = frozenset()  # the store's live lists, as last read
        self._live_read_at: float | None = None
        self._live_flight: SingleFlight[int, list[int]] = SingleFlight()

    @property
    def ttl_seconds(self) -> int:
        return self._timing.ttl_seconds

    async def token(self, list_id: int) -> str | None:
        """The signed list, or None when no such list is live.

        Raises: StatusStoreError, TemporarilyUnavailableError (no signing key),
        StatusReadsSaturatedError.
        """
        now = self._clock.now()
        built = self._built.get(list_id)
        # A wall clock set back makes the age negative: rebuild rather than serve an old list.
        if built is not None and 0 <= now - built.built_at < self._timing.rebuild_seconds:
            return built.token
        return await self._flights.run(list_id, lambda: self._build(list_id, now))

    async def _reads_for(self, list_id: int, now: float) -> _Reads:
        """The read places `list_id` may use: the live lists', when it is known to be one."""
        if list_id in self._built or list_id in self._live:
            return self._live_reads
        read_at = self._live_read_at
        if read_at is None or not 0 <= now - read_at < LIVE_LISTS_REFRESH_SECONDS:
            await self._read_live(now)
            if list_id in self._live:
                return self._live_reads
        return self._unknown_reads

    async def _read_live(self, now: float) -> list[int]:
        """Read the store's live lists (in an unknown id's place), remembering them; requests
        arriving while a read is under way share it (a real list's fetch waits for it rather
        than being refused beside a flood of made-up ids)."""
        return await self._live_flight.run(0, lambda: self._fetch_live(now))

    async def _fetch_live(self, now: float) -> list[int]:
        ids = await self._unknown_reads.run(lambda: self._store.live_lists(int(now)))
        self._live, self._live_read_at = frozenset(ids), now
        return ids

    async def _build(self, list_id: int, now: float) -> str | None:
        reads = await self._reads_for(list_id, now)
        snapshot = await reads.run(lambda: self._store.snapshot(list_id))
        if snapshot is None:
            self._built.pop(list_id, None)
            return None
        if snapshot.suspended and self._bits == 1:
            log.warning("status_suspended_served_invalid", extra={"list_id": list_id})
        array = pack(snapshot.size, self._bits, entry_statuses(snapshot, self._bits))
        token = await self._sign(list_id, StatusList(self._bits, array))
        self._built = {k: v for k, v in self._built.items() if 0 <= now - v.built_at < 60}
        self._built[list_id] = _Built(token, now)
        return token

    async def live_uris(self) -> list[str]:
        """URIs of every live list (the aggregation endpoint, draft §9), read from the store at
        most once per LIVE_LISTS_REFRESH_SECONDS.

        Raises: StatusStoreError, StatusReadsSaturatedError.
        """
        now, read_at = self._clock.now(), self._live_read_at
        if read_at is not None and 0 <= now - read_at < LIVE_LISTS_REFRESH_SECONDS:
            ids = sorted(self._live)  # read within the second: as fresh as a list id's check
        else:
            ids = await self._read_live(now)
        return [f"{self._base_uri}/{list_id}" for list_id in ids]

    async def _sign(self, list_id: int, status_list: StatusList) -> str:
        record, signer = self._keyring.signing_key()
        now = int(self._clock.now())
        expires = now + self._timing.lifetime_seconds
        if record.retire_after:  # never outlive the key's publication
            expires = min(expires, record.retire_after)
        claim = status_list.to_claim()
        claim["aggregation_uri"] = self._base_uri
        claims = {
            "iss": self._issuer,
            "sub": f"{self._base_uri}/{list_id}",
            "iat": now,
            "exp": expires,
            "ttl": self._timing.ttl_seconds,
            "status_list": claim,
        }
        return await self._encoder.encode(claims, signer, TYP_STATUS_LIST)
