"""[policy] settings for the OPA engine and the author tools, and the engine they select."""

import os
from pathlib import Path

import pytest
from sekisho.components import build_policy_engine
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError
from sekisho.policy.opa.engine import OpaPolicyEngine
from sekisho.policy.wasm.engine import WasmPolicyEngine

from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures


@pytest.fixture(autouse=True)
def _no_sekisho_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEKISHO_"):
            monkeypatch.delenv(name)


def load(tmp_path: Path, body: str) -> Settings:
    path = tmp_path / "sekisho.toml"
    path.write_text("[policy]\n" + body)
    return load_settings(path)


def test_defaults() -> None:
    policy = load_settings(None).policy
    assert policy.engine == "embedded" and policy.manage is True
    assert policy.opa_timeout_seconds == 0.5 and policy.opa_check_interval_seconds == 2.0
    assert policy.opa_binary == ""


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8181",
        "http://localhost:8181/",
        "https://opa.internal.example.com",
        "http://[::1]:8181",
    ],
)
def test_opa_url_accepted(tmp_path: Path, url: str) -> None:
    load(tmp_path, f'opa_url = "{url}"\n')


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('opa_url = "http://opa.example.com:8181"', "https URL"),
        ('opa_url = "https://opa.example.com/v1/data"', "scheme://host[:port] only"),
        ('opa_url = "https://opa.example.com/?x=1"', "scheme://host[:port] only"),
        ('opa_url = "https://user@opa.example.com"', "scheme://host[:port] only"),
        ('opa_url = "http://127.0.0.1:99999"', "out of range"),
        ('opa_url = "127.0.0.1:8181"', "https URL"),
        ("opa_timeout_seconds = 0", "greater than 0"),
        ("opa_timeout_seconds = 60", "less than or equal to 30"),
        ("opa_check_interval_seconds = 0", "greater than 0"),
        ('manage = "sometimes"', "valid boolean"),
        ("opa_tiemout_seconds = 1", "Extra inputs"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, body + "\n")
    key = body.split(" ", 1)[0]
    assert f"config key 'policy.{key}'" in str(caught.value)
    assert message in str(caught.value)


def test_opa_binary_path_is_relative_to_the_config_folder_and_keeps_symlinks(
    tmp_path: Path,
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "opa").symlink_to("/bin/true")
    settings = load(tmp_path, 'opa_binary = "bin/opa"\n')
    assert settings.policy.opa_binary == str(tmp_path / "bin" / "opa")


def test_opa_binary_name_is_left_for_a_path_lookup(tmp_path: Path) -> None:
    settings = load(tmp_path, 'opa_binary = "opa-1.22"\n')
    assert settings.policy.opa_binary == "opa-1.22"


def test_environment_turns_manage_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEKISHO_POLICY__MANAGE", "false")
    settings = load(tmp_path, 'engine = "opa"\n')
    assert settings.policy.manage is False
    assert settings.policy.reads_folder is False


@pytest.mark.parametrize(
    ("body", "engine", "reads_folder"),
    [
        ("", WasmPolicyEngine, True),
        ('engine = "opa"\n', OpaPolicyEngine, True),
        ('engine = "opa"\nmanage = false\n', OpaPolicyEngine, False),
    ],
)
def test_engine_selection(tmp_path: Path, body: str, engine: type, reads_folder: bool) -> None:
    settings = load(tmp_path, body)
    assert isinstance(build_policy_engine(settings, FakeClock(), RecordedFailures()), engine)
    assert settings.policy.reads_folder is reads_folder
