"""[decision_log] and [policy.shadow] settings: validation names the key, relative paths are
relative to the config file, and each worker gets its own decision log file."""

import os
from pathlib import Path

import pytest
from sekisho.config import PolicyConfig, load_settings
from sekisho.decision_observers import decision_log_path
from sekisho.errors import ConfigError


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "sekisho.toml"
    config.parent.mkdir()
    config.write_text(
        '[policy.shadow]\npath = "../next"\n'
        '[decision_log]\nenabled = true\npath = "../var/d.jsonl"\nhash_key_file = "key"\n'
    )
    settings = load_settings(config)
    assert settings.policy.shadow.path == str(tmp_path / "next")
    assert settings.decision_log.path == tmp_path / "var" / "d.jsonl"
    assert settings.decision_log.hash_key_file == str(tmp_path / "etc" / "key")
    assert settings.policy.for_shadow().path == tmp_path / "next"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        pytest.param(
            '[policy.shadow]\npath = "x"\nengine = "opa"\nopa_url = "http://127.0.0.1:8181"\n',
            "another OPA server",
            id="shadow on the live OPA",
        ),
        pytest.param('[policy.shadow]\nquery = "sekisho.x"\n', "data reference", id="bad query"),
        pytest.param("[policy.shadow]\ncpu_share = 0\n", "policy.shadow.cpu_share", id="cpu 0"),
        pytest.param(
            "[decision_log]\nenabled = true\n",
            "decision_log.hash_key_file': is empty",
            id="no hash key",
        ),
        pytest.param(
            '[decision_log]\nenabled = true\nhash_key_file = ""\n',
            "decision_log.hash_key_file': is empty",
            id="empty hash key",
        ),
        pytest.param(
            '[policy.shadow]\npath = "a"\nbundle_file = "b.tar.gz"\n', "not \\['path'", id="two"
        ),
        pytest.param(
            '[policy.shadow]\nbundle_url = "http://bundles.example.com/b.tar.gz"\n',
            "https",
            id="plaintext bundle url",
        ),
        pytest.param("[decision_log]\nmax_bytes = 10\n", "decision_log.max_bytes", id="tiny"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, toml: str, message: str) -> None:
    config = tmp_path / "sekisho.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_a_shadow_never_inherits_the_live_bundle() -> None:
    live = PolicyConfig(bundle_url="https://b.example.com/live.tar.gz", shadow={"path": "/next"})
    shadow = live.for_shadow()
    assert (shadow.bundle_url, shadow.bundle_file, shadow.path) == ("", None, Path("/next"))
    assert shadow.reads_folder
    bundled = PolicyConfig(shadow={"bundle_file": "/next.tar.gz"}).for_shadow()
    assert bundled.bundle_file == Path("/next.tar.gz") and bundled.uses_bundle


def test_the_shadow_engine_settings_keep_everything_but_what_the_shadow_names() -> None:
    live = PolicyConfig(
        path=Path("/live"), shadow={"path": "/next", "engine": "opa", "opa_url": "http://[::1]:9"}
    )
    shadow = live.for_shadow()
    assert (shadow.engine, shadow.path, shadow.opa_url) == ("opa", Path("/next"), "http://[::1]:9")
    assert shadow.query == live.query and not shadow.shadow.enabled


def test_each_worker_writes_its_own_decision_log() -> None:
    path = Path("/var/log/sekisho/decisions.jsonl")
    assert decision_log_path(path, several_workers=False) == path
    own = decision_log_path(path, several_workers=True)
    assert own == path.with_name(f"decisions.{os.getpid()}.jsonl")
