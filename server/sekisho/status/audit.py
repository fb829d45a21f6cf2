"""The revocation audit log: JSON lines of each `sekisho revoke` / `revoke lift` / `revoke suspend`
/ `revoke reinstate`, appended and fsynced like the key audit log (signing/audit.py). Fields:
time, action (revoke | lift | suspend | reinstate), kind, key, operator, reason, marked (live
tokens marked INVALID by revoke, SUSPENDED by suspend, returned to VALID by reinstate), until
(0 = until lifted or reinstated), repeat (a revoke or suspend of what was in force already: the
first entry stands, StatusStore.revoke).

Each change has two lines (status/changes.py writes them, write-ahead): before the store change,
one with `"outcome": "pending"` (marked and until null: known once the change is made); after
it, the line as before, without `outcome`; or, when the change failed, the pending line again
with `"outcome": "failed"` and `detail` (the error). Lines without `outcome` are the changes made;
a pending line followed by neither is a command that stopped between (docs/security-team.md).

A change and its lines are one ordered step: `sekisho revoke` holds the log's lock (locked())
from before its pending line until its result (or failed) line is appended. Two operators
changing one value at once (a `revoke` and a `lift`) otherwise could have their lines appended in
the other order than the store made the changes, both of the same second: read in the log's
order, the value was still revoked when the store had lifted it (red team session 17, left then)."""

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sekisho.clock import utc_timestamp
from sekisho.errors import ConfigError
from sekisho.filelocks import flock_before
from sekisho.signing.audit import (
    append_fsynced,
    open_for_append,
    unwritable,
)

LOCK_WAIT_SECONDS = 30.0


class AuditLogLockedError(Exception):
    """Another `sekisho revoke` held the revocation audit log's lock for longer than we waited;
    nothing was changed."""


@dataclass(frozen=True, slots=True)
class RevocationEvent:
    """One revocation command, as the audit log records it."""

    action: str  # revoke | lift | suspend | reinstate
    kind: str
    key: str
    operator: str
    reason: str
    marked: int = 0
    until: int = 0
    repeat: bool = False  # a revoke or suspend of what was in force: the first stands


class RevocationAuditLog:
    """Appends to one file, created 0600 (reasons name incidents and users)."""

    def __init__(self, path: Path, *, lock_wait_seconds: float = LOCK_WAIT_SECONDS) -> None:
        self._path = path
        self._lock_wait = lock_wait_seconds

    @property
    def path(self) -> Path:
        return self._path

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive flock on the log itself: every command that appends to this log, in
        any process (on any host whose filesystem shares flock), takes it in turn. The log is
        opened for appending (created 0600, signing.audit.open_for_append), so one that cannot
        be written is refused before any change. No lock file beside it: the log may be made in
        advance in a folder the operator cannot write, as before.

        Raises: ConfigError when the log cannot be opened (nothing was changed);
        AuditLogLockedError after waiting `lock_wait_seconds` for another command."""
        try:
            fd = _locked_descriptor(self._path, self._lock_wait)
        except OSError as exc:
            raise ConfigError(unwritable(self._path, "status_list.audit_log", exc)) from exc
        try:
            yield
        finally:
            os.close(fd)  # the only descriptor of this open file: the lock goes with it

    def record_pending(self, now: int, event: RevocationEvent) -> None:
        """Before the change: its line with `"outcome": "pending"`, marked and until null (not
        known yet). Raises: OSError (nothing is changed yet)."""
        self._append(_entry(now, event, made=False) | {"outcome": "pending"})

    def record(self, now: int, event: RevocationEvent) -> None:
        """After the change, its pending line already written: the line with marked and until.
        Raises: OSError (the revocation is already in force; its pending line says so)."""
        self._append(_entry(now, event, made=True))

    def record_failed(self, now: int, event: RevocationEvent, detail: str) -> None:
        """After record_pending, when the change failed or found nothing to change: the pending
        line again with `"outcome": "failed"` and `detail`. Raises: OSError."""
        self._append(_entry(now, event, made=False) | {"outcome": "failed", "detail": detail})

    def _append(self, entry: dict[str, object]) -> None:
        append_fsynced(self._path, json.dumps(entry, ensure_ascii=False).encode() + b"\n")


def _entry(now: int, event: RevocationEvent, *, made: bool) -> dict[str, object]:
    """The fields of every line; `marked` and `until` null unless the change is `made`."""
    return {
        "time": utc_timestamp(now),
        "action": event.action,
        "kind": event.kind,
        "key": event.key,
        "operator": event.operator,
        "reason": event.reason,
        "marked": event.marked if made else None,
        "until": event.until if made else None,
        "repeat": event.repeat,
    }


def _locked_descriptor(path: Path, wait_seconds: float) -> int:
    """A descriptor of the log at `path` holding its flock. Taken again when the log was renamed
    away (rotated) while waiting: the lock of a file no longer named `path` orders nothing.

    Raises: OSError; AuditLogLockedError after `wait_seconds`."""
    deadline = time.monotonic() + wait_seconds
    while True:
        fd = open_for_append(path)
        try:
            _wait_for_lock(fd, deadline, path)
            held = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if _names(path, held):
            return fd
        os.close(fd)


def _names(path: Path, held: os.stat_result) -> bool:
    """Whether `path` still names the file `held` describes."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _wait_for_lock(fd: int, deadline: float, path: Path) -> None:
    """Raises: AuditLogLockedError once `deadline` (time.monotonic()) has passed."""
    if not flock_before(fd, deadline):
        raise AuditLogLockedError(
            f"another sekisho revoke has held the lock of the revocation audit log {path} "
            "for too long; nothing was changed: run the command again"
        )
