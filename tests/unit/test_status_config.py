"""[status_list] validation: each inconsistent setting is refused naming its key."""

from pathlib import Path

import pytest
from sekisho.config import load_settings
from sekisho.errors import ConfigError


def _load(tmp_path: Path, body: str) -> None:
    path = tmp_path / "sekisho.toml"
    path.write_text("[status_list]\n" + body, encoding="utf-8")
    load_settings(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param('store = "redis"\n', "needs status_list.redis_url", id="redis-without-url"),
        pytest.param('redis_url = "http://x"\n', "redis://", id="redis-url-scheme"),
        pytest.param("list_size = 1000\nlease_size = 2000\n", "lease_size", id="lease-too-big"),
        pytest.param(
            "ttl_seconds = 60\nlifetime_seconds = 60\n", "lifetime", id="exp-not-past-ttl"
        ),
        pytest.param("bits = 3\n", "status_list.bits", id="bits-3"),
        pytest.param("unknown = 1\n", "status_list.unknown", id="unknown-key"),
    ],
)
def test_bad_status_list_settings_are_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        _load(tmp_path, body)


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "sekisho.toml"
    path.parent.mkdir()
    path.write_text('[status_list]\npath = "st/s.db"\naudit_log = "r.log"\n', encoding="utf-8")
    settings = load_settings(path).status_list
    assert settings.path == tmp_path / "conf" / "st" / "s.db"
    assert settings.audit_log_path == tmp_path / "conf" / "r.log"
