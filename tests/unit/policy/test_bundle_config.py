"""[policy] bundle_* and the embedded-engine bounds: defaults, validation (naming the key), paths
relative to the config file, and the engine they select."""

import os
from pathlib import Path

import pytest
from sekisho.components import build_policy_engine
from sekisho.config import load_settings
from sekisho.errors import ConfigError
from sekisho.policy.wasm.bundles import BundlePolicyEngine
from sekisho.policy.wasm.engine import WasmPolicyEngine

from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures


@pytest.fixture(autouse=True)
def _no_sekisho_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SEKISHO_"):
            monkeypatch.delenv(name)


def config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "conf" / "sekisho.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text("[policy]\n" + body)
    return path


def test_defaults() -> None:
    policy = load_settings(None).policy
    assert (policy.eval_timeout_seconds, policy.memory_limit_mb, policy.pool_size) == (0.1, 256, 1)
    assert policy.bundle_file is None and policy.bundle_url == ""
    assert (policy.bundle_poll_min_seconds, policy.bundle_poll_max_seconds) == (60.0, 120.0)
    assert policy.bundle_verification_key is None and policy.bundle_verification_alg is None
    assert not policy.uses_bundle and policy.reads_folder


def test_bundle_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = config(tmp_path, 'bundle_file = "b/sekisho.tar.gz"\nbundle_verification_key = "k.pem"\n')
    policy = load_settings(path).policy
    assert policy.bundle_file == (tmp_path / "conf" / "b" / "sekisho.tar.gz").resolve()
    assert policy.bundle_verification_key == (tmp_path / "conf" / "k.pem").resolve()
    assert policy.uses_bundle and not policy.reads_folder


def test_bundle_ca_file_is_relative_to_the_config_file_and_must_hold_a_ca(tmp_path: Path) -> None:
    body = 'bundle_url = "https://b.example.com/s.tar.gz"\nbundle_ca_file = "tls/ca.pem"\n'
    settings = load_settings(config(tmp_path, body))
    assert settings.policy.bundle_ca_file == (tmp_path / "conf" / "tls" / "ca.pem").resolve()
    with pytest.raises(ConfigError, match=r"policy\.bundle_ca_file"):
        # the file is read at start: missing stops the start
        build_policy_engine(settings, FakeClock(), RecordedFailures())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            'bundle_file = "a.tar.gz"\nbundle_url = "https://b.example.com/s.tar.gz"\n',
            "bundle_file or bundle_url, not both",
            id="two-sources",
        ),
        pytest.param(
            'engine = "opa"\nbundle_url = "https://b.example.com/s.tar.gz"\n',
            'need engine = "embedded"',
            id="opa-engine",
        ),
        pytest.param(
            'bundle_url = "http://bundles.example.com/s.tar.gz"\n',
            "https URL",
            id="plaintext-off-loopback",
        ),
        pytest.param(
            'bundle_url = "https://b.example.com/s"\nbundle_poll_min_seconds = 30\n'
            "bundle_poll_max_seconds = 10\n",
            "bundle_poll_max_seconds must be >=",
            id="max-below-min",
        ),
        pytest.param('bundle_verification_key = "k.pem"\n', "needs bundle_file", id="key-alone"),
        pytest.param(
            'bundle_ca_file = "ca.pem"\n', "bundle_ca_file needs bundle_url", id="ca-alone"
        ),
        pytest.param(
            'bundle_verification_alg = "none"\n', "bundle_verification_alg", id="alg-none"
        ),
        pytest.param("eval_timeout_seconds = 0\n", "eval_timeout_seconds", id="no-time"),
        pytest.param("memory_limit_mb = 1\n", "memory_limit_mb", id="too-little-memory"),
        pytest.param("pool_size = 0\n", "pool_size", id="no-instances"),
    ],
)
def test_invalid_settings_name_the_key(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(config(tmp_path, body))


@pytest.mark.parametrize(
    ("body", "engine"),
    [
        pytest.param("", WasmPolicyEngine, id="folder"),
        pytest.param('bundle_file = "s.tar.gz"\n', BundlePolicyEngine, id="bundle-file"),
        pytest.param('bundle_url = "http://127.0.0.1:1/s.tar.gz"\n', BundlePolicyEngine, id="url"),
    ],
)
def test_engine_selection(tmp_path: Path, body: str, engine: type) -> None:
    assert isinstance(
        build_policy_engine(load_settings(config(tmp_path, body)), FakeClock(), RecordedFailures()),
        engine,
    )


def test_a_bundle_engine_needs_no_opa_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        config(tmp_path, 'bundle_file = "s.tar.gz"\nopa_binary = "/nowhere/opa"\n')
    )
    assert isinstance(
        build_policy_engine(settings, FakeClock(), RecordedFailures()), BundlePolicyEngine
    )
