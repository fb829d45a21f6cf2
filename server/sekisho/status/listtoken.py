"""Status List Tokens (draft-ietf-oauth-status-list §5.1): a JWT with `typ: statuslist+jwt`,
`sub` = the list's URI, `iat`, `exp`, `ttl` and `status_list {bits, lst, aggregation_uri}`,
signed by the service's active key, so the JWKS that verifies minted tokens verifies it too.

A signed list is reused for at most `rebuild_seconds` of the injected clock, so a revocation shows
within that plus the store write; verifiers then see it within the list's `ttl`.
"""

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from sekisho.clock import Clock
from sekisho.minting.encoder import JwsEncoder
from sekisho.signing.keyring import Keyring
from sekisho.status.bitlist import INVALID, SUSPENDED, StatusList, pack
from sekisho.status.models import ListSnapshot
from sekisho.status.store import StatusStore

log = logging.getLogger(__name__)

TYP_STATUS_LIST = "statuslist+jwt"
MEDIA_TYPE = "application/statuslist+jwt"


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


@dataclass(frozen=True, slots=True)
class ListTiming:
    """`ttl` (how long verifiers may cache a list) and `exp - iat` of a served list."""

    ttl_seconds: int
    lifetime_seconds: int
    rebuild_seconds: float = 1.0


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

    @property
    def ttl_seconds(self) -> int:
        return self._timing.ttl_seconds

    @property
    def aggregation_uri(self) -> str:
        return self._base_uri

    async def token(self, list_id: int) -> str | None:
        """The signed list, or None when no such list is live.

        Raises: StatusStoreError, TemporarilyUnavailableError (no signing key).
        """
        now = self._clock.now()
        built = self._built.get(list_id)
        # A wall clock set back makes the age negative: rebuild rather than serve an old list.
        if built is not None and 0 <= now - built.built_at < self._timing.rebuild_seconds:
            return built.token
        snapshot = await asyncio.to_thread(self._store.snapshot, list_id)
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
        """URIs of every live list (the aggregation endpoint, draft §9)."""
        ids = await asyncio.to_thread(self._store.live_lists, int(self._clock.now()))
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
