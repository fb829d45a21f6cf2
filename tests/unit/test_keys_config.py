"""[keys] settings for the lifecycle and the KMS backends: each bad value is refused with an
error naming the key."""

import os
from pathlib import Path

import pytest
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError
from sekisho.keystores import build_keystore
from sekisho.signing.filestore import FileKeyStore
from sekisho.signing.kmsstore import KmsKeyStore

from tests.fakes.clock import FakeClock
from tests.fakes.kms import FakeKms


@pytest.fixture(autouse=True)
def _no_sekisho_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEKISHO_"):
            monkeypatch.delenv(name)


def _load(tmp_path: Path, body: str) -> Settings:
    path = tmp_path / "sekisho.toml"
    path.write_text(body)
    return load_settings(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            '[keys]\nbackend = "kms-wrapped"\n', "needs kms_wrapping_key_id", id="wrapped-no-key"
        ),
        pytest.param('[keys]\nbackend = "kms"\nalgorithm = "EdDSA"\n', "not EdDSA", id="kms-eddsa"),
        pytest.param('[keys]\nbackend = "vault"\n', "keys.backend", id="unknown-backend"),
        pytest.param(
            '[keys]\npassphrase_env = "NOT-A-NAME"\n', "keys.passphrase_env", id="bad-env-name"
        ),
        pytest.param(
            '[keys]\nbackend = "kms"\npassphrase_env = "X"\n',
            "passphrase_env applies to backend 'file' only",
            id="passphrase-with-kms",
        ),
        pytest.param(
            '[keys]\nkms_endpoint_url = "http://kms.example.com"\n',
            "keys.kms_endpoint_url",
            id="plain-http-endpoint",
        ),
        pytest.param(
            '[keys]\nkms_alias_prefix = "a b"\n', "keys.kms_alias_prefix", id="alias-space"
        ),
        pytest.param('[keys]\nkms_alias_prefix = "aws/x"\n', "reserved by AWS", id="alias-aws"),
        pytest.param("[keys]\npoll_seconds = 30\n", "keys.poll_seconds", id="poll-too-slow"),
        pytest.param(
            "[keys]\nrotation_period = 599\n",
            r"keys.rotation_period \(599 s\) must be at least 2 x tokens.jwks_max_age_seconds",
            id="rotation-shorter-than-prepublication",
        ),
        pytest.param("[keys]\nrotation_period = -1\n", "keys.rotation_period", id="negative"),
        pytest.param(
            "[keys]\nkms_timeout_seconds = 0\n", "keys.kms_timeout_seconds", id="zero-deadline"
        ),
    ],
)
def test_bad_keys_settings_name_the_key(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, body)


def test_rotation_period_of_twice_the_max_age_is_accepted(tmp_path: Path) -> None:
    settings = _load(tmp_path, "[keys]\nrotation_period = 600\n")
    assert settings.keys.rotation_period == 600


def test_audit_log_is_relative_to_the_config_file(tmp_path: Path) -> None:
    default = _load(tmp_path, '[keys]\ndir = "k"\n')
    assert default.keys.audit_log_path == tmp_path / "k" / "audit.log"
    explicit = _load(tmp_path, '[keys]\naudit_log = "logs/keys.jsonl"\n')
    assert explicit.keys.audit_log_path == tmp_path / "logs" / "keys.jsonl"


def test_each_backend_builds_its_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    file_settings = load_settings(None)
    assert isinstance(build_keystore(file_settings, clock), FileKeyStore)
    kms_settings = _load(tmp_path, '[keys]\nbackend = "kms"\n')
    assert isinstance(build_keystore(kms_settings, clock, FakeKms()), KmsKeyStore)  # type: ignore[arg-type]


def test_a_short_passphrase_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEY_PASS", "short")
    settings = _load(tmp_path, '[keys]\npassphrase_env = "KEY_PASS"\n')
    with pytest.raises(ConfigError, match=r"\$KEY_PASS must be at least 12 characters"):
        build_keystore(settings, FakeClock())
