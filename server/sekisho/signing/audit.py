"""The key audit log: one JSON line per key transition, appended and fsynced, never rewritten.

A line says who (`operator`, from `--operator` or $USER; `sekisho-service` for automatic
rotation), what (`action`, `kid`, `from_state` → `to_state`), why (`reason`), when (`time`), and
which safety rule an operator overrode with --force (`forced`). docs/security-team.md explains
each field. The lines of a change are written before it is committed (signing/manager.py); a
commit that then fails adds the same lines with `"outcome": "failed"` and `detail` (its error).
"""

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sekisho.clock import utc_timestamp
from sekisho.errors import KeyStoreError
from sekisho.signing.lifecycle import Change


@dataclass(frozen=True, slots=True)
class Actor:
    """Who asked for a key operation, and why."""

    operator: str
    reason: str = ""
    source: str = "cli"  # cli | service


def require_audited_text(value: str, name: str) -> str:
    """`value` if an audit line can hold it (UTF-8 text). argv and the environment are bytes on
    POSIX; one that is not UTF-8 reaches Python as a lone surrogate, which neither the audit
    logs nor the status store can write: the key or revocation change was committed, then the
    audit line failed, so it went unaudited. The CLIs check first and change nothing.

    Raises: ValueError naming `name` (an option or variable), never echoing the value.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"{name} is not UTF-8 text (character {exc.start + 1} is a byte that is not UTF-8): "
            "give it in UTF-8; nothing was changed"
        ) from None
    return value


class KeyAuditLog:
    """Appends to one file; created 0600 because reasons may name incidents."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def ready(self) -> None:
        """Check, before a change is committed, that its line can be appended.

        Raises: KeyStoreError naming the file and `keys.audit_log`."""
        try:
            require_appendable(self._path)
        except OSError as exc:
            raise KeyStoreError(unwritable(self._path, "keys.audit_log", exc)) from exc

    def record(self, now: int, changes: Sequence[Change], actor: Actor) -> None:
        """Append one line per change, before it is committed. Raises: OSError."""
        if not changes:
            return
        append_fsynced(self._path, b"".join(_line(now, change, actor) for change in changes))

    def record_failed(self, now: int, changes: Sequence[Change], actor: Actor, detail: str) -> None:
        """After `record`, when the commit failed: the same lines with `"outcome": "failed"`
        and `detail`. Raises: OSError."""
        failed = {"outcome": "failed", "detail": detail}
        append_fsynced(self._path, b"".join(_line(now, c, actor, failed) for c in changes))


def require_appendable(path: Path) -> None:
    """Open (creating) an audit file as append_fsynced does, write nothing. A log the CLI's
    user cannot write (another uid's, 0600; a folder in its place) let a key or revocation
    change commit, then fail unaudited (red team session 16). Raises: OSError."""
    os.close(open_for_append(path))


def unwritable(path: Path, setting: str, exc: OSError) -> str:
    """The refusal when an audit log cannot be written, before any change."""
    return (
        f"the audit log {path} (config key '{setting}') cannot be written: "
        f"{exc.strerror or exc}; nothing was changed"
    )


def append_fsynced(path: Path, lines: bytes) -> None:
    """Append `lines` to an audit file (0600, folder 0700) and fsync. A line an earlier append
    left cut short (disk full mid-line) is ended first: `lines` would run on from it, and a
    reader lose them (a write-ahead line's failed line among them). Raises: OSError."""
    if not _ends_a_line(path):
        lines = b"\n" + lines
    fd = open_for_append(path)
    try:
        remaining = memoryview(lines)
        while remaining:
            remaining = remaining[os.write(fd, remaining) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def _ends_a_line(path: Path) -> bool:
    """Whether the log is missing, empty or ends with a newline; True when it cannot be read (a
    log its writer may only append to: appended to as before)."""
    try:
        with path.open("rb") as log:
            if log.seek(0, os.SEEK_END) == 0:
                return True
            log.seek(-1, os.SEEK_END)
            return log.read(1) == b"\n"
    except OSError:
        return True


def open_for_append(path: Path) -> int:
    """An audit file's descriptor for appending, the file created 0600 and its folder 0700 when
    missing. O_APPEND: each write lands at the end even with several writers (CLI and service).
    Raises: OSError."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)


def _line(now: int, change: Change, actor: Actor, extra: dict[str, str] | None = None) -> bytes:
    entry: dict[str, object] = {
        "time": utc_timestamp(now),
        "action": change.action.value,
        "kid": change.kid,
        "alg": change.alg,
        "from_state": change.from_state.value if change.from_state else None,
        "to_state": change.to_state.value,
        "operator": actor.operator,
        "source": actor.source,
        "reason": actor.reason,
        "forced": list(change.forced),
        "note": change.note,
        **(extra or {}),
    }
    return json.dumps(entry, ensure_ascii=False).encode() + b"\n"
