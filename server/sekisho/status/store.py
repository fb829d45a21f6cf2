"""The StatusStore protocol: the state every worker and replica shares.

`record` and `revoke` are each one atomic step in the store, so a token recorded concurrently with
a revocation that covers it is marked INVALID whichever runs first (docs/security-team.md).
Suspensions are the reversible kind: `suspend` marks SUSPENDED, `reinstate` returns to VALID only
the live tokens no other suspension covers; nothing ever removes an INVALID mark.
"""

from collections.abc import Sequence
from typing import Protocol

from sekisho.status.models import (
    InForce,
    IssuedToken,
    Lease,
    ListSnapshot,
    Revocation,
    RevocationKind,
)


class StatusStoreError(Exception):
    """The store could not be read or written (file locked too long, Redis unreachable)."""


class StatusStore(Protocol):
    """Leases, issued-token records, INVALID marks and revocations."""

    def lease(
        self, now: int, *, list_size: int, lease_size: int, use_until: int, valid_until: int
    ) -> Lease:
        """Reserve fresh indexes; `valid_until` bounds the exp of any token minted under them.

        Raises: StatusStoreError.
        """
        ...

    def record(self, now: int, tokens: Sequence[IssuedToken]) -> int:
        """Remember minted tokens; marks those a revocation (INVALID) or a suspension (SUSPENDED)
        covers. Returns how many changed status (each token once)."""
        ...

    def revoke(self, now: int, revocation: Revocation) -> int:
        """Put `revocation` in force and mark every live token it covers INVALID; returns how
        many changed status (VALID or SUSPENDED before; those already INVALID are not counted).
        A revocation of the same kind and key in force already stands as it is (its time,
        operator, reason and end: when and why it was first made); the live tokens are marked
        all the same."""
        ...

    def lift(self, kind: RevocationKind, key: str) -> bool:
        """End a revocation (marked tokens stay INVALID). False when none was in force."""
        ...

    def revocations(self, now: int) -> list[Revocation]:
        """Every revocation in force at `now`."""
        ...

    def suspend(self, now: int, suspension: Revocation) -> int:
        """Put `suspension` in force and mark every live token it covers SUSPENDED; returns how
        many changed status (VALID before; those already INVALID or SUSPENDED are not counted).
        A suspension of the same kind and key in force already stands as it is, as in revoke()."""
        ...

    def reinstate(self, now: int, kind: RevocationKind, key: str) -> int | None:
        """End a suspension; its live tokens no other suspension covers lose the SUSPENDED mark.
        Returns how many changed status (SUSPENDED before, VALID now: not INVALID); None when
        none was in force."""
        ...

    def suspensions(self, now: int) -> list[Revocation]:
        """Every suspension in force at `now`."""
        ...

    def in_force(self, now: int) -> InForce:
        """Every revocation and every suspension in force at `now`, both read at one moment of
        the store (read apart, a revocation added and a suspension lifted in between made a
        view in which neither was in force, a state the store never had)."""
        ...

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        """A list's size, INVALID and SUSPENDED indexes; None when unknown or retired."""
        ...

    def live_lists(self, now: int) -> list[int]:
        """Ids of the lists a token still valid at `now` may point into."""
        ...

    def prune(self, now: int) -> None:
        """Forget expired records, retired lists and elapsed revocations and suspensions."""
        ...

    def close(self) -> None: ...
