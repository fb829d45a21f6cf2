"""The status-list Redis password never sits in a URL, so no dump, log line or error prints it.

An inline password (redis://:pw@host, redis://user:pw@host, ?password=) in status_list.redis_url
is refused at config load, naming the setting and the alternative (status_list.redis_password_env)
without echoing the value; the password comes from that environment variable, and the failure
paths (authentication refused, Redis unreachable) never print it, in the CLI or in the service's
logs. Each test fails if its defence is removed.
"""

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from sekisho.cli import main
from sekisho.config import load_settings
from sekisho.errors import ConfigError
from sekisho.status.revocations import RevocationGate
from sekisho.status.store import StatusStoreError
from sekisho.status_stores import build_status_store

from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures
from tests.redis_server import RedisServer, start_redis

PASSWORD = "hunter2-status-redis-pw"
WRONG = "wrong-password-4711-xyz"
ENV = "SEKISHO_TEST_STATUS_REDIS_PASSWORD"


def _config(tmp_path: Path, url: str, password_env: str = "") -> Path:
    path = tmp_path / "sekisho.toml"
    env_line = f'redis_password_env = "{password_env}"\n' if password_env else ""
    path.write_text(
        f'[status_list]\nenabled = true\nstore = "redis"\nredis_url = "{url}"\n{env_line}',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def guarded_redis() -> Iterator[RedisServer]:
    server = start_redis(password=PASSWORD)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"redis://:{PASSWORD}@127.0.0.1:6379/0", id="password-only"),
        pytest.param(f"redis://sekisho:{PASSWORD}@127.0.0.1:6379/0", id="user-and-password"),
        pytest.param(f"redis://127.0.0.1:6379/0?password={PASSWORD}", id="query-parameter"),
        pytest.param(f"rediss://:{PASSWORD}@redis.internal:6380/0", id="tls"),
    ],
)
@pytest.mark.parametrize("source", ["file", "environment"])
def test_inline_redis_password_is_refused_without_echoing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, source: str
) -> None:
    if source == "environment":
        monkeypatch.setenv("SEKISHO_STATUS_LIST__REDIS_URL", url)
        path = _config(tmp_path, "redis://127.0.0.1:6379/0")
    else:
        path = _config(tmp_path, url)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    message = str(refused.value)
    assert "status_list.redis_url" in message
    assert "status_list.redis_password_env" in message  # the alternative
    assert PASSWORD not in "".join(traceback.format_exception(refused.value))


def test_password_from_the_named_variable_authenticates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, guarded_redis: RedisServer
) -> None:
    monkeypatch.setenv(ENV, PASSWORD)
    settings = load_settings(_config(tmp_path, guarded_redis.url, ENV))
    assert PASSWORD not in settings.model_dump_json()
    store = build_status_store(settings.status_list)
    try:
        assert store.revocations(0) == []  # authenticated: the command went through
    finally:
        store.close()


def test_a_named_but_empty_password_variable_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    settings = load_settings(_config(tmp_path, "redis://127.0.0.1:1/0", ENV))
    with pytest.raises(ConfigError, match=ENV):
        build_status_store(settings.status_list)


@pytest.fixture(params=["auth-failure", "unreachable"])
def failing(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    guarded_redis: RedisServer,
) -> Path:
    """A config whose Redis refuses the password, or is gone."""
    if request.param == "auth-failure":
        monkeypatch.setenv(ENV, WRONG)
    else:
        monkeypatch.setenv(ENV, PASSWORD)
        guarded_redis.stop()
    return _config(tmp_path, guarded_redis.url, ENV)


def _printed_nothing_secret(text: str) -> None:
    assert PASSWORD not in text
    assert WRONG not in text


def test_cli_failure_paths_never_print_the_password(
    failing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["revoke", "list", "--config", str(failing)]) == 1
    out, err = capsys.readouterr()
    assert "status store (redis)" in err  # said, not a traceback
    _printed_nothing_secret(out + err)


async def test_service_log_lines_on_failure_never_print_the_password(
    failing: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(failing)
    store = build_status_store(settings.status_list)
    gate = RevocationGate(store, FakeClock(1_800_000_000.0), max_stale_seconds=2.0)
    with pytest.raises(StatusStoreError) as raised:
        await gate.refresh()
    _printed_nothing_secret("".join(traceback.format_exception(raised.value)))
    with caplog.at_level(logging.DEBUG):
        loop = asyncio.create_task(gate.refresh_forever(0.05, RecordedFailures()))
        give_up = time.monotonic() + 30  # a hang guard: a fixed 0.3 s could end before a try did
        while not any(r.message == "revocations_refresh_failed" for r in caplog.records):
            assert time.monotonic() < give_up, "no failed refresh logged"
            await asyncio.sleep(0.05)
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    store.close()
    assert any(r.message == "revocations_refresh_failed" for r in caplog.records)
    _printed_nothing_secret(caplog.text)
