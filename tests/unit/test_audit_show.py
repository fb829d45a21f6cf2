"""`sekisho audit show ID|--last`: the audit record of one exchange, found in the JSON log."""

import io
import json
from pathlib import Path

import pytest
from sekisho.cli import main

LINES = [
    {"event": "service_started", "grpc_port": 50051},
    {"event": "token_exchanged", "outcome": "allow", "decision_id": "d-1", "request_id": "r-1"},
    "not json at all",
    {"event": "policy_loaded", "decision_id": "d-2"},  # not an audit event
    {
        "event": "token_rejected",
        "outcome": "deny",
        "decision_id": "d-2",
        "request_id": "r-2",
        "reason": "access_denied",
        "detail": "tenant globex is not served by https://docs-as.example.com",
    },
]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "sekisho.log"
    path.write_text("".join(f"{json.dumps(x) if isinstance(x, dict) else x}\n" for x in LINES))
    return path


def _show(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["audit", "show", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("key", ["d-2", "r-2"], ids=["by-decision-id", "by-request-id"])
def test_finds_the_record_by_either_id(
    log: Path, capsys: pytest.CaptureFixture[str], key: str
) -> None:
    code, out, _ = _show(capsys, key, "--log", str(log))
    record = json.loads(out)
    assert code == 0
    assert record["event"] == "token_rejected" and record["decision_id"] == "d-2"
    assert "tenant globex" in record["detail"]  # the reason the caller was not told


def test_last_is_the_most_recent_exchange(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _show(capsys, "--last", "--log", str(log))
    assert code == 0 and json.loads(out)["request_id"] == "r-2"


def test_unknown_id_says_so(log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _show(capsys, "nope", "--log", str(log))
    assert code == 1 and not out and "no audit record for nope" in err


def test_an_id_or_last_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["audit", "show"])
    assert caught.value.code == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_on_stdin_is_refused_naming_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --log the log is stdin; at a terminal that used to wait silently for input."""
    monkeypatch.setattr("sys.stdin", _Terminal())
    code, out, err = _show(capsys, "--last")
    assert code == 2 and not out
    assert "--log FILE" in err and "var/sekisho.log" in err


def test_a_piped_log_is_read_and_named_stdin(
    log: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(log.read_text()))
    assert _show(capsys, "r-1")[0] == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = _show(capsys, "r-1")
    assert code == 1 and "no audit record for r-1 in stdin" in err
