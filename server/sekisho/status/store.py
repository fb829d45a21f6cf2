"""The StatusStore protocol: the state every worker and replica shares.

`record` and `revoke` are each one atomic step in the store, so a token recorded concurrently with
a revocation that covers it is marked INVALID whichever runs first (docs/security-team.md).
"""

from collections.abc import Sequence
from typing import Protocol

from sekisho.status.models import IssuedToken, Lease, ListSnapshot, Revocation, RevocationKind


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
        """Remember minted tokens; marks those covered by a revocation. Returns how many."""
        ...

    def revoke(self, now: int, revocation: Revocation) -> int:
        """Put `revocation` in force and mark every live token it covers; returns that count."""
        ...

    def lift(self, kind: RevocationKind, key: str) -> bool:
        """End a revocation (marked tokens stay INVALID). False when none was in force."""
        ...

    def revocations(self, now: int) -> list[Revocation]:
        """Every revocation in force at `now`."""
        ...

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        """A list's size and INVALID indexes; None when unknown or retired."""
        ...

    def live_lists(self, now: int) -> list[int]:
        """Ids of the lists a token still valid at `now` may point into."""
        ...

    def prune(self, now: int) -> None:
        """Forget expired records, retired lists and elapsed revocations."""
        ...

    def close(self) -> None: ...
