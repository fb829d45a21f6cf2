"""Key lifecycle (docs/architecture.md §7): the transitions `sekisho keys` and automatic rotation
make, and the timing rules that keep every downstream verifier working through them.

Timing (OIDC Core §10.1.1 "publish, then sign, then remove"; the Vault verification-TTL bug is
the failure this prevents — keys removed while tokens they signed were still valid):

- a `next` key signs only after it has been published for 2 x the JWKS max-age, so every verifier
  that honours Cache-Control has refetched at least once since it appeared;
- a key that stops signing stays published (`retiring`) until max token lifetime + leeway + JWKS
  max-age have passed, recorded as its `retire_after`; the minter never mints an `exp` past it;
- `revoke` is the exception: the key leaves the JWKS at once and, if it was active, the next key
  signs at once so issuance never stops.

Everything here is pure: records in, records and a list of changes out. `now` and key creation
are injected, so every rule is tested without files, KMS or a wall clock.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from sekisho.clock import utc_timestamp
from sekisho.errors import KeyStoreError
from sekisho.signing.keys import KeyRecord, KeyState

S = KeyState


class LifecycleError(KeyStoreError):
    """A key operation is not allowed now (unknown kid, wrong state, too early)."""


class Action(StrEnum):
    """What happened to one key; one audit line each."""

    CREATE = "create"  # a new key, published as `next` (or `active` by init)
    PROMOTE = "promote"  # next → active: it signs from now on
    DEMOTE = "demote"  # active → retiring: it stops signing, stays published
    RETIRE = "retire"  # retiring (or an unused next) → retired: gone from the JWKS
    REVOKE = "revoke"  # any → revoked: gone from the JWKS at once
    RESEAL = "reseal"  # its file rewritten with the configured protection; state unchanged


@dataclass(frozen=True, slots=True)
class Change:
    """One key's transition, with the safety rules an operator skipped to make it."""

    action: Action
    kid: str
    alg: str
    from_state: KeyState | None
    to_state: KeyState
    forced: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class Transition:
    """The keystore after an operation, what changed, and why nothing did (if so)."""

    records: tuple[KeyRecord, ...]
    changes: tuple[Change, ...] = ()
    waiting: str = ""


@dataclass(frozen=True, slots=True)
class Timing:
    """The durations the rules depend on, from [tokens] and [trust] of the running service."""

    jwks_max_age: int
    max_token_lifetime: int
    leeway: int
    rotation_period: int

    @property
    def prepublication(self) -> int:
        return 2 * self.jwks_max_age

    def promotable_at(self, record: KeyRecord) -> int:
        """When a next key has been published long enough to sign (it is published at creation)."""
        return record.created_at + self.prepublication

    def removable_at(self, stopped_signing_at: int) -> int:
        """When a key that stopped signing may leave the JWKS: every token it signed has expired
        (lifetime), verifier clocks agree (leeway), and caches that held it have refreshed."""
        return stopped_signing_at + self.max_token_lifetime + self.leeway + self.jwks_max_age


NewKey = Callable[[], KeyRecord]


class Lifecycle:
    """The rules, applied at one instant `now`; `new_key` creates key material as `next`.

    Records hold whole seconds. So that a rule never fires early by a fraction of a second,
    times written into records are rounded up (`_stamp`) and "has enough time passed" checks
    use the time rounded down (`_now`).
    """

    def __init__(self, timing: Timing, now: float, new_key: NewKey) -> None:
        self._timing = timing
        self._now = math.floor(now)
        self._stamp = math.ceil(now)
        self._new_key = new_key

    def init(self, records: Sequence[KeyRecord]) -> Transition:
        """An active and a next key in an empty keystore. Raises: LifecycleError if not empty."""
        if records:
            raise LifecycleError("the keystore already holds keys; nothing was created")
        edit = _Edit(records)
        first = edit.create(self._new_key())
        edit.set(first, S.ACTIVE, Action.CREATE, activated_at=self._stamp, retire_after=0)
        edit.create(self._new_key())
        return edit.done()

    def rotate(self, records: Sequence[KeyRecord], *, force: bool = False) -> Transition:
        """The right next step: retire what may go, then create a next key or promote it."""
        edit = _Edit(records)
        self._retire_due(edit)
        upcoming = edit.oldest(S.NEXT)
        if upcoming is None:
            created = edit.create(self._new_key())
            if not force:
                at = self._timing.promotable_at(created)
                return edit.done(f"next key {created.kid} may be promoted from {utc_timestamp(at)}")
            upcoming = created
        if not force and edit.active() is not None and not self._promotable(upcoming):
            return edit.done(self._too_early(upcoming))
        self._promote(edit, upcoming, force=force)
        return edit.done()

    def promote(self, records: Sequence[KeyRecord], *, force: bool = False) -> Transition:
        """next → active, the active key → retiring, and a new next key.

        Raises: LifecycleError when there is no next key, or it is too young and not `force`.
        """
        edit = _Edit(records)
        upcoming = edit.oldest(S.NEXT)
        if upcoming is None:
            raise LifecycleError("there is no next key to promote (run `sekisho keys rotate`)")
        if not force and edit.active() is not None and not self._promotable(upcoming):
            raise LifecycleError(self._too_early(upcoming) + "; --force skips this check")
        self._promote(edit, upcoming, force=force)
        return edit.done()

    def retire(self, records: Sequence[KeyRecord], kid: str, *, force: bool = False) -> Transition:
        """A retiring key (once its tokens are gone) or an unused next key leaves the JWKS.

        Raises: LifecycleError for an unknown kid, the active key, a key already gone, or a
        retiring key still inside its retire_after and not `force`.
        """
        edit = _Edit(records)
        record = edit.find(kid)
        if record.state is S.ACTIVE:
            raise LifecycleError(
                f"kid {kid} is the active key: promote the next key first (`sekisho keys "
                "rotate`), or `sekisho keys revoke` it if it is compromised"
            )
        if record.state in {S.RETIRED, S.REVOKED}:
            raise LifecycleError(f"kid {kid} is already {record.state.value}")
        forced: tuple[str, ...] = ()
        if record.state is S.RETIRING and self._now < record.retire_after:
            if not force:
                raise LifecycleError(self._still_needed(record) + "; --force skips this check")
            forced = (self._still_needed(record),)
        edit.set(record, S.RETIRED, Action.RETIRE, forced=forced)
        self._keep_a_next_key(edit)
        return edit.done()

    def revoke(self, records: Sequence[KeyRecord], kid: str) -> Transition:
        """Remove a key from the JWKS now; if it was active, the next key signs at once.

        Raises: LifecycleError for an unknown or already revoked kid.
        """
        edit = _Edit(records)
        record = edit.find(kid)
        if record.state is S.REVOKED:
            raise LifecycleError(f"kid {kid} is already revoked")
        if record.state is S.ACTIVE:
            upcoming = edit.oldest(S.NEXT) or edit.create(self._new_key())
            note = "" if self._promotable(upcoming) else self._early_note(upcoming)
            edit.set(upcoming, S.ACTIVE, Action.PROMOTE, activated_at=self._stamp, note=note)
        edit.set(edit.find(kid), S.REVOKED, Action.REVOKE)
        self._keep_a_next_key(edit)
        return edit.done()

    def auto_rotate(self, records: Sequence[KeyRecord]) -> Transition:
        """What the service does on its own every rotation_period, under the same rules."""
        edit = _Edit(records)
        self._retire_due(edit)
        upcoming = edit.oldest(S.NEXT)
        if upcoming is None:
            created = edit.create(self._new_key())
            return edit.done(f"next key {created.kid} created")
        active = edit.active()
        due = active is None or self._now >= active.activated_at + self._timing.rotation_period
        if due and (active is None or self._promotable(upcoming)):
            self._promote(edit, upcoming, force=False)
            return edit.done()
        return edit.done("" if not due else self._too_early(upcoming))

    # --- steps --------------------------------------------------------------------------

    def _promote(self, edit: "_Edit", upcoming: KeyRecord, *, force: bool) -> None:
        forced = (self._too_early(upcoming),) if not self._promotable(upcoming) else ()
        if edit.active() is None:
            forced = ()  # nothing signs: promoting cannot break a verifier that worked before
        if forced and not force:
            raise LifecycleError(forced[0])
        for active in edit.all(S.ACTIVE):
            removable = self._timing.removable_at(self._stamp)
            edit.set(
                active,
                S.RETIRING,
                Action.DEMOTE,
                retire_after=removable,
                note=f"published until at least {utc_timestamp(removable)}",
            )
        edit.set(upcoming, S.ACTIVE, Action.PROMOTE, activated_at=self._stamp, forced=forced)
        self._keep_a_next_key(edit)

    def _retire_due(self, edit: "_Edit") -> None:
        for record in edit.all(S.RETIRING):
            if record.retire_after and self._now >= record.retire_after:
                edit.set(record, S.RETIRED, Action.RETIRE)

    def _keep_a_next_key(self, edit: "_Edit") -> None:
        # Always one key pre-published, so an emergency promotion never signs with a key
        # verifiers have not seen (specs research H.5).
        if edit.oldest(S.NEXT) is None:
            edit.create(self._new_key())

    # --- rule texts -----------------------------------------------------------------------

    def _promotable(self, record: KeyRecord) -> bool:
        return self._now >= self._timing.promotable_at(record)

    def _too_early(self, record: KeyRecord) -> str:
        published = max(0, self._now - record.created_at)
        return (
            f"next key {record.kid} has been published for {published} s; promotion needs "
            f"{self._timing.prepublication} s (2 x jwks_max_age_seconds), from "
            f"{utc_timestamp(self._timing.promotable_at(record))}"
        )

    def _early_note(self, record: KeyRecord) -> str:
        return (
            f"{self._too_early(record)}: verifiers whose cached JWKS predates it must refetch "
            "before they accept its tokens"
        )

    def _still_needed(self, record: KeyRecord) -> str:
        return (
            f"retiring key {record.kid} may still have signed tokens in use until "
            f"{utc_timestamp(record.retire_after)} (max token lifetime + leeway + jwks max-age "
            "after it stopped signing)"
        )


class _Edit:
    """A working copy of the records that collects one Change per transition."""

    def __init__(self, records: Sequence[KeyRecord]) -> None:
        self._records = list(records)
        self._changes: list[Change] = []

    def find(self, kid: str) -> KeyRecord:
        for record in self._records:
            if record.kid == kid:
                return record
        raise LifecycleError(f"no key with kid {kid!r} in the keystore (see `sekisho keys list`)")

    def all(self, state: KeyState) -> list[KeyRecord]:
        return [r for r in self._records if r.state is state]

    def oldest(self, state: KeyState) -> KeyRecord | None:
        matching = self.all(state)
        return min(matching, key=lambda r: (r.created_at, r.kid)) if matching else None

    def active(self) -> KeyRecord | None:
        return self.oldest(S.ACTIVE)

    def create(self, record: KeyRecord) -> KeyRecord:
        self._records.append(record)
        self._changes.append(Change(Action.CREATE, record.kid, record.alg, None, record.state))
        return record

    def set(
        self,
        record: KeyRecord,
        state: KeyState,
        action: Action,
        *,
        forced: tuple[str, ...] = (),
        note: str = "",
        activated_at: int | None = None,
        retire_after: int | None = None,
    ) -> KeyRecord:
        updated = dataclasses.replace(
            record,
            state=state,
            activated_at=record.activated_at if activated_at is None else activated_at,
            retire_after=record.retire_after if retire_after is None else retire_after,
        )
        self._records = [updated if r.kid == record.kid else r for r in self._records]
        change = Change(action, record.kid, record.alg, record.state, state, forced, note)
        if action is Action.CREATE:
            # init activates a key it just created: one "create" line, straight to active.
            self._changes = [c for c in self._changes if c.kid != record.kid]
            change = dataclasses.replace(change, from_state=None)
        self._changes.append(change)
        return updated

    def done(self, waiting: str = "") -> Transition:
        return Transition(tuple(self._records), tuple(self._changes), waiting)
