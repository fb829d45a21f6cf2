"""Automatic rotation: the service acts on rotation_period under the unforced rules, one replica
at a time, and reloads its keyring when it changed something."""

import json
import logging
from pathlib import Path

import pytest
from sekisho.signing.audit import KeyAuditLog
from sekisho.signing.filestore import FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.signing.keys import KeyState
from sekisho.signing.lifecycle import Timing
from sekisho.signing.manager import KeyManager
from sekisho.signing.rotation import AutoRotator, check_interval

from tests.fakes.clock import FakeClock

S = KeyState
T0 = 1_800_000_000
PERIOD = 3600
TIMING = Timing(jwks_max_age=300, max_token_lifetime=300, leeway=30, rotation_period=PERIOD)


def _replica(directory: Path, clock: FakeClock) -> tuple[AutoRotator, Keyring, list[int]]:
    store = FileKeyStore(directory)
    keyring = Keyring(store)
    keyring.load()
    reloads: list[int] = []

    async def on_change() -> None:
        reloads.append(1)
        await keyring.refresh()

    manager = KeyManager(store, KeyAuditLog(directory / "audit.log"), TIMING, clock, "ES256")
    return AutoRotator(manager, on_change), keyring, reloads


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    FileKeyStore(tmp_path).init("ES256", T0)
    return tmp_path


async def test_rotation_happens_when_the_period_is_up_and_the_keyring_follows(
    keys_dir: Path,
) -> None:
    clock = FakeClock(T0)
    rotator, keyring, reloads = _replica(keys_dir, clock)
    before = keyring.signing_key()[0].kid
    clock.advance(PERIOD - 1)
    assert not (await rotator.check()).changes  # type: ignore[union-attr]
    clock.advance(1)
    transition = await rotator.check()
    assert transition is not None and transition.changes
    assert reloads == [1]
    assert keyring.signing_key()[0].kid != before
    lines = [json.loads(line) for line in (keys_dir / "audit.log").read_text().splitlines()]
    assert {line["operator"] for line in lines} == {"sekisho-service"}
    assert {line["source"] for line in lines} == {"service"}


async def test_two_replicas_rotate_once(keys_dir: Path) -> None:
    clock = FakeClock(T0 + PERIOD)
    first, _, _ = _replica(keys_dir, clock)
    second, _, _ = _replica(keys_dir, clock)
    assert (await first.check()).changes  # type: ignore[union-attr]
    assert not (await second.check()).changes  # type: ignore[union-attr]  (re-read under lock)
    states = sorted(r.state.value for r in FileKeyStore(keys_dir).records())
    assert states == ["active", "next", "retiring"]


async def test_a_replica_that_cannot_get_the_lock_skips_this_check(
    keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0 + PERIOD)
    rotator, _, reloads = _replica(keys_dir, clock)
    with FileKeyStore(keys_dir).locked(), caplog.at_level(logging.INFO):
        assert await rotator.check() is None
    assert "key_rotation_skipped" in caplog.messages
    assert not reloads
    assert (await rotator.check()) is not None  # and acts on the next one


async def test_a_broken_keystore_is_logged_not_raised(
    keys_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rotator, keyring, _ = _replica(keys_dir, FakeClock(T0 + PERIOD))
    (keys_dir / "keyring.json").write_text("{broken")
    with caplog.at_level(logging.ERROR):
        assert await rotator.check() is None
    assert "key_rotation_failed" in caplog.messages
    assert keyring.signing_key()  # still serving the last good keys


@pytest.mark.parametrize(
    ("period", "interval"),
    [(10, 1.0), (600, 30.0), (86_400, 60.0), (2, 1.0)],
)
def test_check_interval(period: int, interval: float) -> None:
    assert check_interval(period) == interval
