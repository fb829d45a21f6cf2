"""KeyManager: runs one lifecycle operation against a keystore, under its lock, and audits it.

Every mutation but init first checks the keystore exists, before anything can create a file
(the file store's lock makes its folder and `.lock`, reseal's audit check the audit log), then
takes the keystore lock, re-reads the records inside it (so a racing CLI or a
rotating replica is never overwritten with stale state), applies the rules of lifecycle.py at
the injected clock's `now`, appends one audit line per change, then commits atomically.

The lines come first (write-ahead): a change whose lines cannot be written is not made, and a
crash between the two leaves a line, never an unaudited change. A commit that then fails gets a
second line per change with `"outcome": "failed"` and its reason (signing/audit.py).
"""

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from sekisho.clock import Clock
from sekisho.errors import KeyStoreError
from sekisho.signing.audit import Actor, KeyAuditLog, unwritable
from sekisho.signing.keyring import KeySet
from sekisho.signing.keys import KeyRecord
from sekisho.signing.lifecycle import Action, Change, Lifecycle, Timing, Transition


class ManagedKeyStore(Protocol):
    """A keystore backend that can be changed, not only read (file, kms-wrapped, kms)."""

    def exists(self) -> bool: ...

    def load(self) -> KeySet:
        """Records and a signer per published key. Raises: KeyStoreError."""
        ...

    def records(self) -> list[KeyRecord]:
        """Raises: KeyStoreError."""
        ...

    def create_key(self, alg: str, now: int) -> KeyRecord:
        """New key material in state `next`, invisible to readers until commit. Raises:
        KeyStoreError."""
        ...

    def commit(self, before: Sequence[KeyRecord], after: Sequence[KeyRecord]) -> None:
        """Persist `after` (read as `before` under the same lock). Raises: KeyStoreError."""
        ...

    def locked(self, wait_seconds: float = 30.0) -> AbstractContextManager[None]:
        """Exclusive across processes (and replicas). Raises: KeyStoreLockedError."""
        ...


class ResealableKeyStore(Protocol):
    """A keystore whose key files can be rewritten with the configured protection (file,
    kms-wrapped)."""

    def reseal(self, resealed: Callable[[KeyRecord], None]) -> list[str]:
        """Rewrite every key file under the keystore lock, calling `resealed` after each; the
        kids rewritten. Raises: KeyStoreError."""
        ...


Operation = Callable[[Lifecycle, list[KeyRecord]], Transition]


class KeyManager:
    """The security team's operations and automatic rotation, one audited transaction each."""

    def __init__(
        self,
        store: ManagedKeyStore,
        audit: KeyAuditLog,
        timing: Timing,
        clock: Clock,
        algorithm: str,
    ) -> None:
        self._store = store
        self._audit = audit
        self._timing = timing
        self._clock = clock
        self._algorithm = algorithm

    @property
    def timing(self) -> Timing:
        return self._timing

    def records(self) -> list[KeyRecord]:
        """Raises: KeyStoreError."""
        return self._store.records()

    def init(self, actor: Actor) -> Transition:
        """An active and a next key. Raises: LifecycleError if keys exist, KeyStoreError."""
        return self._apply(lambda lc, records: lc.init(records), actor, allow_empty=True)

    def rotate(self, actor: Actor, *, force: bool = False) -> Transition:
        return self._apply(lambda lc, records: lc.rotate(records, force=force), actor)

    def promote(self, actor: Actor, *, force: bool = False) -> Transition:
        return self._apply(lambda lc, records: lc.promote(records, force=force), actor)

    def retire(self, kid: str, actor: Actor, *, force: bool = False) -> Transition:
        return self._apply(lambda lc, records: lc.retire(records, kid, force=force), actor)

    def revoke(self, kid: str, actor: Actor) -> Transition:
        return self._apply(lambda lc, records: lc.revoke(records, kid), actor)

    def auto_rotate(self, actor: Actor, *, wait_seconds: float = 0.0) -> Transition:
        """One rotation check; `wait_seconds=0` gives up at once when another replica holds
        the lock (it is doing the same work). Raises: KeyStoreLockedError, KeyStoreError."""
        return self._apply(lambda lc, records: lc.auto_rotate(records), actor, wait=wait_seconds)

    def reseal(self, store: ResealableKeyStore, actor: Actor) -> list[Change]:
        """Rewrite every key file of `store` (this manager's) with the configured protection;
        one `reseal` audit line per key, appended under the lock as soon as its file is
        rewritten. Raises: KeyStoreError (before any file is rewritten when the log cannot be
        written; naming the key rewritten when its line then fails)."""
        self._require_keystore()
        self._audit.ready()  # a key file is never rewritten unaudited
        stamp = math.ceil(self._clock.now())
        changes: list[Change] = []

        def resealed(record: KeyRecord) -> None:
            change = Change(Action.RESEAL, record.kid, record.alg, record.state, record.state)
            self._record_rewritten(stamp, change, actor)
            changes.append(change)

        store.reseal(resealed)
        return changes

    def _apply(
        self, operation: Operation, actor: Actor, *, allow_empty: bool = False, wait: float = 30.0
    ) -> Transition:
        if not allow_empty:
            self._require_keystore()
        with self._store.locked(wait):
            empty = allow_empty and not self._store.exists()
            before = [] if empty else self._store.records()
            now = self._clock.now()
            stamp = math.ceil(now)  # see Lifecycle: records are stamped rounded up
            lifecycle = Lifecycle(self._timing, now, lambda: self._new_key(stamp))
            transition = operation(lifecycle, list(before))
            if transition.changes:
                self._write_ahead(stamp, transition, actor)  # a change is never made unaudited
                try:
                    self._store.commit(before, transition.records)
                except Exception as exc:
                    self._record_failure(stamp, transition, actor, exc)
                    raise
            return transition

    def _require_keystore(self) -> None:
        """Refuse a change to a keystore that is not there, creating nothing: the file store's
        lock makes the keys folder and its `.lock` (and reseal's audit check the audit log)
        before the records are read inside it, so a replica's automatic rotation after its keys
        folder was removed, or any caller but `sekisho keys init`, left them behind and only
        then found no keyring.json. Only init makes a keystore.

        Raises: KeyStoreMissingError (the store's own, naming where it looked), KeyStoreError."""
        if not self._store.exists():
            self._store.records()  # raises the store's KeyStoreMissingError (or: unreadable)

    def _write_ahead(self, stamp: int, transition: Transition, actor: Actor) -> None:
        """Append the change's lines before it is committed. A write that fails (disk full,
        quota, I/O; red team session 17 found such a failure after the commit, leaving the
        change unaudited) leaves everything as it was.

        Raises: KeyStoreError naming the file, saying nothing was changed."""
        try:
            self._audit.record(stamp, transition.changes, actor)
        except OSError as exc:
            raise KeyStoreError(unwritable(self._audit.path, "keys.audit_log", exc)) from exc

    def _record_rewritten(self, stamp: int, change: Change, actor: Actor) -> None:
        """Append a reseal's line once its file is rewritten (the store calls back after each;
        a reseal changes no key and no state, only how a file is protected). A write that fails
        then says what is rewritten (red team session 17).

        Raises: KeyStoreError naming the key and the file."""
        try:
            self._audit.record(stamp, (change,), actor)
        except OSError as exc:
            raise KeyStoreError(
                f"committed ({change.action.value} {change.kid} -> {change.to_state.value}), "
                f"but its line could not be appended to the audit log {self._audit.path} "
                f"(config key 'keys.audit_log'): {exc.strerror or exc}; record it by hand"
            ) from exc

    def _record_failure(
        self, stamp: int, transition: Transition, actor: Actor, error: Exception
    ) -> None:
        """After a commit failed: its lines, already written, are followed by `failed` ones.

        Raises: KeyStoreError when those cannot be written either (the log then shows changes
        that were not made: said, with the commit's own error)."""
        try:
            self._audit.record_failed(stamp, transition.changes, actor, str(error))
        except OSError as exc:
            raise KeyStoreError(
                f"{error}; the audit log {self._audit.path} (config key 'keys.audit_log') has "
                f"this change's lines, written before it, and its failure could not be added: "
                f"{exc.strerror or exc}; record it by hand"
            ) from error

    def _new_key(self, stamp: int) -> KeyRecord:
        """A key for the lifecycle, made once its change's audit line can be written: made
        first, a refused change left a private key file (or a KMS key) behind at each try, and
        automatic rotation one per check (red team session 17)."""
        self._audit.ready()
        return self._store.create_key(self._algorithm, stamp)
