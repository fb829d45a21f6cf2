"""apply_audited (status/changes.py): a revocation change is audited write-ahead, on both store
backends. The pending line is in the log (appended, fsynced) when the store changes; the result
line, with `marked`, follows it; a change whose pending line cannot be written is not made; one
the store refuses after it gets a `failed` line. Before (red team session 17, a residual risk
until session 20), the only line came after the change, and a full disk left it unaudited."""

import errno
import json
from pathlib import Path
from typing import Any

import pytest
from sekisho.errors import ConfigError
from sekisho.status.audit import RevocationAuditLog, RevocationEvent
from sekisho.status.changes import apply_audited
from sekisho.status.models import IssuedToken, Revocation, subject_key
from sekisho.status.store import StatusStore, StatusStoreError

from tests.revocation_log import audit_lines, changes_made

NOW = 1_800_000_000
ALICE = subject_key("https://idp.example.com", "alice")
CHANGES = ("revoke", "suspend", "lift", "reinstate")


class _Watched:
    """A store that notes the audit log's lines each time it is asked to change, and can be made
    to fail a change (`refuse`) or to find nothing to end (`gone`)."""

    def __init__(self, store: StatusStore, log: Path) -> None:
        self._store, self._log = store, log
        self.seen: dict[str, list[dict[str, Any]]] = {}
        self.refuse: StatusStoreError | None = None
        self.gone = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name not in CHANGES:
            return method

        def changing(*args: Any) -> Any:
            self.seen[name] = audit_lines(self._log)
            if self.refuse is not None:
                raise self.refuse
            if self.gone:
                return None if name == "reinstate" else False
            return method(*args)

        return changing


class _FullLog(RevocationAuditLog):
    """The log's appends fail from the `failing` one on (disk full, a quota, `ulimit -f`)."""

    def __init__(self, path: Path, failing: str) -> None:
        super().__init__(path)
        self._failing = failing

    def record_pending(self, now: int, event: RevocationEvent) -> None:
        self._fail("pending")
        super().record_pending(now, event)

    def record(self, now: int, event: RevocationEvent) -> None:
        self._fail("result")
        super().record(now, event)

    def _fail(self, line: str) -> None:
        if line == self._failing:
            raise OSError(errno.EFBIG, "File too large")


def _entry() -> Revocation:
    return Revocation("subject", ALICE, "INC-7 look", "sec", NOW)


def _seeded(store: StatusStore, action: str) -> int:
    """A live token of alice's, and what a lift or reinstate of alice ends; the list id."""
    lease = store.lease(NOW, list_size=10, lease_size=10, use_until=NOW + 60, valid_until=NOW + 390)
    token = IssuedToken("a1", ALICE, "agent-1", "https://crm", lease.list_id, 0, NOW + 300)
    store.record(NOW, [token])
    if action == "lift":
        store.revoke(NOW, _entry())
    if action == "reinstate":
        store.suspend(NOW, _entry())
    return lease.list_id


@pytest.mark.parametrize("action", CHANGES)
def test_the_store_changes_with_the_pending_line_already_in_the_log(
    store: StatusStore, tmp_path: Path, action: str
) -> None:
    log = tmp_path / "revocations.log"
    _seeded(store, action)
    watched = _Watched(store, log)
    audit = RevocationAuditLog(log)

    with audit.locked():
        event = apply_audited(watched, audit, action, _entry())  # type: ignore[arg-type]

    assert event is not None
    (pending,) = watched.seen[action]  # what the log held when the store changed
    assert pending["outcome"] == "pending" and pending["action"] == action
    assert pending["key"] == ALICE and pending["marked"] is None and pending["until"] is None
    (made,) = changes_made(audit_lines(log))  # its result line follows it
    assert made["marked"] == event.marked == (0 if action == "lift" else 1)
    assert made["until"] == 0 and made["repeat"] is False


@pytest.mark.parametrize("action", CHANGES)
def test_a_change_whose_pending_line_cannot_be_written_is_not_made(
    store: StatusStore, tmp_path: Path, action: str
) -> None:
    log = tmp_path / "revocations.log"
    list_id = _seeded(store, action)
    before = (store.in_force(NOW), store.snapshot(list_id))
    watched = _Watched(store, log)
    audit = _FullLog(log, failing="pending")

    with audit.locked(), pytest.raises(ConfigError, match="nothing was changed") as refused:
        apply_audited(watched, audit, action, _entry())  # type: ignore[arg-type]

    assert "status_list.audit_log" in str(refused.value) and str(log) in str(refused.value)
    assert watched.seen == {}  # the store was never asked
    assert (store.in_force(NOW), store.snapshot(list_id)) == before
    assert audit_lines(log) == []


@pytest.mark.parametrize("action", CHANGES)
def test_a_change_the_store_refuses_after_its_pending_line_gets_a_failed_line(
    store: StatusStore, tmp_path: Path, action: str
) -> None:
    log = tmp_path / "revocations.log"
    _seeded(store, action)
    watched = _Watched(store, log)
    watched.refuse = StatusStoreError("status store (redis): Connection refused")
    audit = RevocationAuditLog(log)

    with audit.locked(), pytest.raises(StatusStoreError):
        apply_audited(watched, audit, action, _entry())  # type: ignore[arg-type]

    pending, failed = audit_lines(log)
    assert pending["outcome"] == "pending"
    assert failed["outcome"] == "failed"
    assert failed["detail"] == "status store (redis): Connection refused"
    assert changes_made([pending, failed]) == []


@pytest.mark.parametrize("action", ["lift", "reinstate"])
def test_an_end_found_gone_at_the_change_gets_a_failed_line(
    store: StatusStore, tmp_path: Path, action: str
) -> None:
    """In force when looked at under the lock, gone at the change (its end passed and the
    service pruned it): the pending line is closed by a failed one, nothing is counted made."""
    log = tmp_path / "revocations.log"
    _seeded(store, action)
    watched = _Watched(store, log)
    watched.gone = True
    audit = RevocationAuditLog(log)

    with audit.locked():
        assert apply_audited(watched, audit, action, _entry()) is None  # type: ignore[arg-type]

    pending, failed = audit_lines(log)
    what = "revocation" if action == "lift" else "suspension"
    assert pending["outcome"] == "pending" and failed["outcome"] == "failed"
    assert (
        failed["detail"]
        == f"no subject {what} of --issuer https://idp.example.com --sub alice is in force"
    )


@pytest.mark.parametrize("action", ["lift", "reinstate"])
def test_an_end_of_nothing_in_force_writes_no_line(
    store: StatusStore, tmp_path: Path, action: str
) -> None:
    log = tmp_path / "revocations.log"
    watched = _Watched(store, log)
    audit = RevocationAuditLog(log)

    with audit.locked():
        assert apply_audited(watched, audit, action, _entry()) is None  # type: ignore[arg-type]

    assert watched.seen == {} and audit_lines(log) == []


def test_a_result_line_that_cannot_be_written_says_the_change_is_made(
    store: StatusStore, tmp_path: Path
) -> None:
    log = tmp_path / "revocations.log"
    _seeded(store, "revoke")
    audit = _FullLog(log, failing="result")

    with audit.locked(), pytest.raises(OSError, match="is made") as failed:
        apply_audited(store, audit, "revoke", _entry())

    assert "only its pending line is in the audit log" in str(failed.value)
    assert [r.key for r in store.revocations(NOW)] == [ALICE]  # made...
    (pending,) = audit_lines(log)  # ...and audited as pending, never unaudited
    assert pending["outcome"] == "pending" and pending["action"] == "revoke"


def test_a_line_cut_short_by_an_earlier_append_does_not_swallow_the_next(
    store: StatusStore, tmp_path: Path
) -> None:
    """An append that failed part-way (disk full mid-line) left a line without its newline: the
    next command's pending line ran on from it, one line no reader could parse, and its result
    line then read as a change without a pending line. The fragment is ended first."""
    log = tmp_path / "revocations.log"
    log.write_bytes(b'{"time": "2026-12-04T17:30:02Z", "act')
    _seeded(store, "revoke")
    audit = RevocationAuditLog(log)

    with audit.locked():
        apply_audited(store, audit, "revoke", _entry())

    fragment, *lines = log.read_text(encoding="utf-8").splitlines()
    assert fragment == '{"time": "2026-12-04T17:30:02Z", "act'
    (made,) = changes_made([json.loads(line) for line in lines])
    assert made["action"] == "revoke" and made["marked"] == 1
