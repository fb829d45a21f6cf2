"""One configured path, two folders (red team session 18): the config loader resolved `[policy]
path`, `bundle_file`, `[policy.shadow] path` and `[keys] dir` through their symlinks at start,
while the watch (reload.watch_directory) follows a symlink repointed at a new release only when
it is handed the link. From a config file, `current -> releases/v1` became releases/v1 for good:
a repoint (git-sync, `ln -sfn`) was never watched nor read, though docs/operators.md says either
path may be such a link (the watch tests passed the link itself, never a loaded config)."""

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sekisho.config import Settings, load_settings
from sekisho.errors import ConfigError
from sekisho.keystores import build_key_manager
from sekisho.signing.filestore import FileKeyStore

from tests.fakes.clock import FakeClock


def _point(link: Path, target: Path) -> None:
    """Repoint `link` in one rename, as git-sync and `ln -sfn`-style deploys do."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    fresh.replace(link)


@pytest.mark.parametrize(
    ("config", "read"),
    [
        pytest.param('[policy]\npath = "current"\n', lambda s: s.policy.path, id="policy-path"),
        pytest.param(
            '[policy]\nbundle_file = "current/bundle.tar.gz"\n',
            lambda s: s.policy.bundle_file,
            id="policy-bundle-file",
        ),
        pytest.param(
            '[policy.shadow]\npath = "current"\n', lambda s: s.policy.shadow.path, id="shadow"
        ),
        pytest.param('[keys]\ndir = "current"\n', lambda s: s.keys.dir, id="keys-dir"),
    ],
)
def test_a_path_named_through_a_symlink_follows_the_link_after_a_repoint(
    tmp_path: Path, config: str, read: Callable[[Settings], object]
) -> None:
    releases = tmp_path / "releases"
    for name in ("v1", "v2"):
        (releases / name).mkdir(parents=True)
        (releases / name / "bundle.tar.gz").write_bytes(b"")
    link = tmp_path / "current"
    link.symlink_to(releases / "v1")
    (tmp_path / "sekisho.toml").write_text(config)
    settings = load_settings(tmp_path / "sekisho.toml")

    _point(link, releases / "v2")

    named = Path(os.path.realpath(str(read(settings))))
    assert named.is_relative_to(releases / "v2"), named


def test_a_key_audit_log_naming_the_keyring_through_a_symlinked_folder_is_refused(
    tmp_path: Path,
) -> None:
    """The keys folder keeps its link, the audit log is resolved: the check that refuses an
    audit log naming keyring.json (red team session 17) compares them as realpath names both."""
    (tmp_path / "releases" / "v1").mkdir(parents=True)
    (tmp_path / "keys").symlink_to(tmp_path / "releases" / "v1")
    (tmp_path / "sekisho.toml").write_text(
        '[keys]\ndir = "keys"\naudit_log = "keys/keyring.json"\n'
    )
    settings = load_settings(tmp_path / "sekisho.toml")

    with pytest.raises(ConfigError, match=r"keys\.audit_log"):
        build_key_manager(settings, FileKeyStore(settings.keys.dir), FakeClock())
