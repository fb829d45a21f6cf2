"""The decision log writer: OPA-shaped events, written off the event loop, size-based rotation,
a bounded queue whose overflow is counted, owner-only files."""

import json
import stat
import threading
from pathlib import Path
from typing import Any

from sekisho.errors import TemporarilyUnavailableError
from sekisho.models import Decision
from sekisho.policy.decisionlog import DecisionEvents, DecisionLog, rfc3339
from sekisho.policy.redaction import FieldHasher, Redactor
from sekisho.policy.rotation import RotatingFile
from sekisho.policy.tap import ObservedDecision

from tests.unit.policy.inputs import CRM, policy_input

LABELS = {"id": "test", "app": "sekisho", "version": "0"}
DECISION = Decision(allow=True, scopes=("crm.read",), decision_id="d-1")


def _events(hash_fields: tuple[str, ...] = ()) -> DecisionEvents:
    redactor = Redactor(FieldHasher("hmac", b"k" * 16), hash_fields, ())
    return DecisionEvents("sekisho/exchange/decision", redactor, LABELS)


def _observed(decision: Decision | None = DECISION, **errors: Any) -> ObservedDecision:
    return ObservedDecision(
        policy_input(CRM, groups=["sales"]), decision, errors.get("error"), 1_800_000_000.25, 1234
    )


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_an_event_has_the_fields_of_an_opa_decision_log_event() -> None:
    event = _events(("subject.email",)).event(_observed())
    assert event["decision_id"] == "d-1"
    assert event["path"] == "sekisho/exchange/decision"
    assert event["timestamp"] == "2027-01-15T08:00:00.250000000Z"
    assert event["labels"] == LABELS
    assert event["metrics"] == {"timer_sekisho_policy_decide_ns": 1234}
    assert event["result"]["allow"] is True and event["result"]["scopes"] == ["crm.read"]
    assert event["input"]["request"] == policy_input(CRM, groups=["sales"])["request"]
    assert event["masked"] == ["/input/subject/email"]
    assert "error" not in event


def test_an_engine_error_is_recorded_without_a_result() -> None:
    error = TemporarilyUnavailableError("unavailable", log_detail="OPA did not answer")
    event = _events().event(_observed(None, error=error))
    assert "result" not in event
    assert event["error"] == {"code": "temporarily_unavailable", "message": "OPA did not answer"}


def test_rfc3339_with_nanoseconds() -> None:
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000000000Z"
    assert rfc3339(1.5) == "1970-01-01T00:00:01.500000000Z"


def test_records_are_written_by_a_thread_and_flushed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "decisions.jsonl"
    writers: set[str] = set()
    decision_log = DecisionLog(
        _events(),
        RotatingFile(path, max_bytes=1 << 20, max_files=2),
        queue_size=100,
        on_count=lambda outcome: writers.add(threading.current_thread().name),
    )
    decision_log.start()
    for _ in range(10):
        decision_log.offer(_observed())
    decision_log.close()
    assert len(_lines(path)) == 10 and decision_log.written == 10
    assert writers == {"sekisho-decision-log"}  # never the caller's (event loop) thread
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # personal data: owner only
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    outcomes: list[str] = []
    decision_log = DecisionLog(
        _events(),
        RotatingFile(tmp_path / "d.jsonl", max_bytes=1 << 20, max_files=1),
        queue_size=3,
        on_count=outcomes.append,
    )
    for _ in range(5):  # the writer is not started: nothing drains the queue
        decision_log.offer(_observed())
    assert decision_log.dropped == 2 and outcomes == ["dropped", "dropped"]
    decision_log.start()
    decision_log.close()
    assert len(_lines(tmp_path / "d.jsonl")) == 3


def test_rotation_keeps_max_files_and_every_line_whole(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    file = RotatingFile(path, max_bytes=100, max_files=2)
    for index in range(10):
        file.write(json.dumps({"n": index, "pad": "x" * 30}).encode())
    file.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["d.jsonl", "d.jsonl.1", "d.jsonl.2"]
    numbers = [
        line["n"]
        for name in ("d.jsonl.2", "d.jsonl.1", "d.jsonl")
        for line in _lines(tmp_path / name)
    ]
    assert numbers == [4, 5, 6, 7, 8, 9]  # the oldest were deleted, order kept
    assert all(p.stat().st_size <= 100 for p in tmp_path.iterdir())


def test_a_failed_write_is_counted_and_the_writer_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    outcomes: list[str] = []
    decision_log = DecisionLog(
        _events(),
        RotatingFile(blocker / "d.jsonl", max_bytes=1 << 20, max_files=1),
        queue_size=10,
        on_count=outcomes.append,
    )
    decision_log.start()
    decision_log.offer(_observed())
    decision_log.offer(_observed())
    decision_log.close()
    assert decision_log.failed == 2 and outcomes == ["failed", "failed"]
