"""Private signing key files others could read or replace are refused at load (as ssh refuses a
loose identity file), naming the file and the fix, unless [keys] allow_loose_key_files says so;
what `sekisho keys` writes passes (0600 files in a 0700 folder, whatever the umask).
Each test fails if its defence is removed.
"""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sekisho.cli import main
from sekisho.config import load_settings
from sekisho.errors import KeyStoreError
from sekisho.keystores import build_keystore
from sekisho.signing.filestore import KEYRING_FILE, FileKeyStore
from sekisho.status.filestore import FileStatusStore
from sekisho.status.store import StatusStoreError

from tests.fakes.clock import FakeClock

NOW = 1_800_000_000
OTHER_UID = 54_321


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    directory = tmp_path / "keys"
    FileKeyStore(directory).init("ES256", NOW)
    return directory


def _key_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.pem"))


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o002], indirect=True, ids=lambda m: f"{m:03o}")
def test_keys_init_writes_0600_files_in_a_0700_folder(tmp_path: Path, umask: int) -> None:
    directory = tmp_path / "keys"
    FileKeyStore(directory).init("ES256", NOW)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [stat.S_IMODE(p.stat().st_mode) for p in _key_files(directory)] == [0o600, 0o600]
    FileKeyStore(directory).load()  # and they pass the check


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604, 0o660, 0o400 | 0o040], ids=oct)
def test_key_file_readable_by_group_or_others_is_refused(keys: Path, mode: int) -> None:
    loose = _key_files(keys)[0]
    loose.chmod(mode)
    with pytest.raises(KeyStoreError) as refused:
        FileKeyStore(keys).load()
    message = str(refused.value)
    assert str(loose) in message
    assert f"chmod 600 {loose}" in message
    assert "keys.allow_loose_key_files" in message


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o730], ids=oct)
def test_keystore_folder_writable_by_others_is_refused(keys: Path, mode: int) -> None:
    keys.chmod(mode)
    with pytest.raises(KeyStoreError, match=f"chmod 700 {keys}"):
        FileKeyStore(keys).load()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_key_file_or_folder_owned_by_another_user_is_refused(keys: Path, what: str) -> None:
    os.chown(_key_files(keys)[0] if what == "file" else keys, OTHER_UID, OTHER_UID)
    with pytest.raises(KeyStoreError, match=f"owned by uid {OTHER_UID}, not the service's"):
        FileKeyStore(keys).load()


def test_the_documented_setting_allows_loose_files(keys: Path, tmp_path: Path) -> None:
    for pem in _key_files(keys):
        pem.chmod(0o640)
    config = tmp_path / "sekisho.toml"
    config.write_text(f'[keys]\ndir = "{keys}"\nallow_loose_key_files = true\n', encoding="utf-8")
    store = build_keystore(load_settings(config), FakeClock(NOW))
    assert store.load().active is not None
    strict = tmp_path / "strict.toml"
    strict.write_text(f'[keys]\ndir = "{keys}"\n', encoding="utf-8")
    with pytest.raises(KeyStoreError, match="chmod 600"):
        build_keystore(load_settings(strict), FakeClock(NOW)).load()


def test_public_keyring_file_may_stay_world_readable(keys: Path) -> None:
    assert stat.S_IMODE((keys / KEYRING_FILE).stat().st_mode) == 0o644  # public metadata
    FileKeyStore(keys).load()


def test_cli_keys_init_output_passes_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sekisho.toml"
    config.write_text('[keys]\ndir = "keys"\n', encoding="utf-8")
    assert main(["keys", "init", "--config", str(config)]) == 0
    assert main(["keys", "list", "--config", str(config)]) == 0
    capsys.readouterr()
    settings = load_settings(config)
    assert build_keystore(settings, FakeClock(NOW)).load().active is not None


# --- the status-list database: whoever may write it may lift revocations -----------------------


@pytest.mark.parametrize(
    ("what", "mode", "fix"),
    [
        pytest.param("file", 0o664, "chmod 600", id="file-group-writable"),
        pytest.param("file", 0o666, "chmod 600", id="file-world-writable"),
        pytest.param("folder", 0o777, "chmod 700", id="folder-world-writable"),
    ],
)
def test_status_database_writable_by_others_is_refused(
    tmp_path: Path, what: str, mode: int, fix: str
) -> None:
    path = tmp_path / "status" / "status.db"
    FileStatusStore(path).revocations(0)  # created 0600 in a 0700 folder: accepted
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (path if what == "file" else path.parent).chmod(mode)
    store = FileStatusStore(path)
    with pytest.raises(StatusStoreError, match=f"writable by group or others: {fix}"):
        store.revocations(0)
