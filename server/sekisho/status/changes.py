"""One `sekisho revoke` change (revoke, lift, suspend, reinstate) and its audit lines, write-ahead
as key changes are (signing/manager.py): the pending line is appended and fsynced before the store
changes, the line with `marked` after it (status/audit.py).

A change whose pending line cannot be written (disk full, quota, `ulimit -f`, I/O) is not made;
before, the line came after the change, which a failed write left made and unaudited (red team
session 17, a residual risk until session 20). A crash between the pending line and the change
leaves a line for a change that may not have been made, never a change without a line; a change
that fails after its line gets a `failed` line, naming the error.

Call apply_audited under RevocationAuditLog.locked(): the lock keeps each command's lines
together (pending, then result or failed) and in the order the store made the changes.
"""

import dataclasses

from sekisho.errors import ConfigError
from sekisho.signing.audit import unwritable
from sekisho.status.audit import RevocationAuditLog, RevocationEvent
from sekisho.status.models import Revocation, RevocationKind, shown_key
from sekisho.status.store import StatusStore, StatusStoreError

_ENDS = frozenset({"lift", "reinstate"})
_OF_REVOCATIONS = frozenset({"revoke", "lift"})  # the others change the suspensions


def apply_audited(
    store: StatusStore, audit: RevocationAuditLog, action: str, entry: Revocation
) -> RevocationEvent | None:
    """Write the pending line, change the store, write the result line; None (nothing changed,
    nothing audited) when a lift or reinstate finds nothing in force.

    Raises: ConfigError when the pending line cannot be written (nothing was changed);
    StatusStoreError (the store's; its `failed` line written); OSError when the result or failed
    line cannot be written (naming the change and the log)."""
    now = entry.created_at
    if action in _ENDS and _found(store, action, entry.kind, entry.key, now) is None:
        return None  # read under the lock: no other command can put one in force meanwhile
    standing = standing_entry(store, action, entry.kind, entry.key, now)
    pending = RevocationEvent(
        action, entry.kind, entry.key, entry.operator, entry.reason, repeat=standing is not None
    )
    _write_ahead(audit, now, pending)  # a change is never made unaudited
    try:
        marked = _apply(store, action, entry, now)
    except StatusStoreError as exc:  # the store said so; anything else may have changed it
        _record_failure(audit, now, pending, exc)
        raise
    if marked is None:  # ended since the look above (its end passed and the service pruned it)
        _record_failure(audit, now, pending, None)
        return None
    until = _until(store, action, entry.kind, entry.key, now)
    event = dataclasses.replace(pending, marked=marked, until=until)
    _record(audit, now, event)
    return event


def _found(store: StatusStore, action: str, kind: str, key: str, now: int) -> Revocation | None:
    """The entry of `kind` = `key` in force among those `action` changes."""
    entries = store.revocations(now) if action in _OF_REVOCATIONS else store.suspensions(now)
    return next((e for e in entries if (e.kind, e.key) == (kind, key)), None)


def standing_entry(
    store: StatusStore, action: str, kind: str, key: str, now: int
) -> Revocation | None:
    """The revocation (revoke) or suspension (suspend) of `kind` = `key` in force, which a
    second one leaves standing (StatusStore.revoke); None for other actions."""
    return None if action in _ENDS else _found(store, action, kind, key, now)


def nothing_in_force(action: str, kind: str, shown: str) -> str:
    """What a lift or reinstate that found nothing to end says (`shown`: the value as typed)."""
    what = "revocation" if action == "lift" else "suspension"
    return f"no {kind} {what} of {shown} is in force"


def _write_ahead(audit: RevocationAuditLog, now: int, pending: RevocationEvent) -> None:
    """Raises: ConfigError naming the log and its setting, saying nothing was changed."""
    try:
        audit.record_pending(now, pending)
    except OSError as exc:
        raise ConfigError(unwritable(audit.path, "status_list.audit_log", exc)) from exc


def _apply(store: StatusStore, action: str, entry: Revocation, now: int) -> int | None:
    """Tokens marked (or returned to VALID); None when a lift or reinstate found nothing."""
    if action == "revoke":
        return store.revoke(now, entry)
    if action == "suspend":
        return store.suspend(now, entry)
    if action == "lift":
        return 0 if store.lift(entry.kind, entry.key) else None
    return store.reinstate(now, entry.kind, entry.key)


def _until(store: StatusStore, action: str, kind: RevocationKind, key: str, now: int) -> int:
    """When the revocation or suspension just put in force ends (0 = when lifted/reinstated)."""
    standing = standing_entry(store, action, kind, key, now)
    return standing.until if standing is not None else 0


def _record(audit: RevocationAuditLog, now: int, event: RevocationEvent) -> None:
    """Append the result line. A write that fails (disk full since the pending line) comes
    after the change: say that it is made, or the bare OSError reads as "nothing happened".

    Raises: OSError naming the change and the file."""
    try:
        audit.record(now, event)
    except OSError as exc:
        raise OSError(
            f"the {event.action} of {event.kind} {_shown(event)} is made ({event.marked} live "
            f"token(s)), but only its pending line is in the audit log {audit.path} (config key "
            f"'status_list.audit_log'); its result line could not be appended: "
            f"{exc.strerror or exc}; record it by hand"
        ) from exc


def _record_failure(
    audit: RevocationAuditLog, now: int, pending: RevocationEvent, error: Exception | None
) -> None:
    """After the pending line, when the change failed (`error`) or found nothing to end (None):
    the `failed` line.

    Raises: OSError when it cannot be written either (the log then shows a pending change that
    was not made: said, with the change's own error)."""
    shown = _shown(pending)
    detail = str(error) if error else nothing_in_force(pending.action, pending.kind, shown)
    try:
        audit.record_failed(now, pending, detail)
    except OSError as exc:
        raise OSError(
            f"{detail}; the {pending.action} of {pending.kind} {shown} was not made, but the "
            f"audit log {audit.path} (config key 'status_list.audit_log') has its pending line "
            f"and its failure could not be added: {exc.strerror or exc}; record it by hand"
        ) from (error or exc)


def _shown(event: RevocationEvent) -> str:
    return shown_key(event.kind, event.key)
