"""What [decision_log] and [policy.shadow] build at start: the decision log says it is on
(`decision_log_opened`), whichever route turned it on, and never with its secret."""

import logging
from pathlib import Path
from typing import Any

import pytest
from sekisho.config import load_settings
from sekisho.decision_observers import build_decision_observers

from tests.fakes.clock import FakeClock

KEY = "a-decision-log-key-of-32-bytes!!"


def _unused(*_: Any) -> Any:
    raise AssertionError("no shadow is configured")


@pytest.mark.parametrize("route", ["config file", "environment"])
async def test_the_decision_log_says_it_opened(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    route: str,
) -> None:
    # Before: nothing was logged when the log came on, by either route; an operator could not
    # tell from the service's lines whether decisions (personal data) were being recorded.
    (tmp_path / "decision-log.key").write_text(KEY + "\n")
    config = tmp_path / "sekisho.toml"
    table = '[decision_log]\nenabled = true\nhash_key_file = "decision-log.key"\n'
    config.write_text(table if route == "config file" else "")
    if route == "environment":
        monkeypatch.setenv("SEKISHO_DECISION_LOG__ENABLED", "true")
        monkeypatch.setenv("SEKISHO_DECISION_LOG__HASH_KEY_FILE", "decision-log.key")
    settings = load_settings(config)
    with caplog.at_level(logging.INFO, logger="sekisho.decision_observers"):
        observers = await build_decision_observers(
            settings, object(), FakeClock(), None, build_engine=_unused, watch=_unused
        )
    await observers.close()
    (opened,) = [r for r in caplog.records if r.message == "decision_log_opened"]
    assert opened.levelno == logging.INFO
    assert opened.path == str(tmp_path / "var" / "decisions.jsonl")  # type: ignore[attr-defined]
    assert opened.hash_method == "hmac"  # type: ignore[attr-defined]
    assert opened.hash_fields == ["subject.email"]  # type: ignore[attr-defined]
    assert opened.erase_fields == []  # type: ignore[attr-defined]
    assert KEY not in str(vars(opened)) and "decision-log.key" not in str(vars(opened))


async def test_a_log_that_is_off_says_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="sekisho.decision_observers"):
        observers = await build_decision_observers(
            load_settings(None), object(), FakeClock(), None, build_engine=_unused, watch=_unused
        )
    await observers.close()
    assert "decision_log_opened" not in caplog.messages
