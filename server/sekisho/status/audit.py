"""The revocation audit log: one JSON line per `sekisho revoke` / `revoke lift` / `revoke suspend`
/ `revoke reinstate`, appended and fsynced like the key audit log (signing/audit.py). Fields:
time, action (revoke | lift | suspend | reinstate), kind, key, operator, reason, marked (live
tokens marked INVALID by revoke, SUSPENDED by suspend, returned to VALID by reinstate), until
(0 = until lifted or reinstated)."""

import json
from dataclasses import dataclass
from pathlib import Path

from sekisho.clock import utc_timestamp
from sekisho.errors import ConfigError
from sekisho.signing.audit import append_fsynced, require_appendable, unwritable


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


class RevocationAuditLog:
    """Appends to one file, created 0600 (reasons name incidents and users)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def ready(self) -> None:
        """Check, before the store changes, that the event's line can be appended.

        Raises: ConfigError naming the file and `status_list.audit_log`."""
        try:
            require_appendable(self._path)
        except OSError as exc:
            raise ConfigError(unwritable(self._path, "status_list.audit_log", exc)) from exc

    def record(self, now: int, event: RevocationEvent) -> None:
        """Raises: OSError (the revocation is already in force)."""
        entry = {
            "time": utc_timestamp(now),
            "action": event.action,
            "kind": event.kind,
            "key": event.key,
            "operator": event.operator,
            "reason": event.reason,
            "marked": event.marked,
            "until": event.until,
        }
        append_fsynced(self._path, json.dumps(entry, ensure_ascii=False).encode() + b"\n")
