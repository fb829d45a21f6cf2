"""`sekisho keys` after a change: can the service user read what was written (issue 19 class 1),
and will the service accept it (the rule it applies at load, signing/filemodes.py)?

Mode bits are checked as the kernel would for that user (tests run as root, who reads anything,
so the files are judged, not opened)."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sekisho.commands.keys_check import readability_lines

SERVICE_UID = 4242


def _keystore(tmp_path: Path, owner: int) -> tuple[Path, list[Path]]:
    tmp_path.chmod(0o755)
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    os.chown(keys, owner, owner)
    ring = keys / "keyring.json"
    ring.write_text("{}")
    ring.chmod(0o644)
    key = keys / "kid.pem"
    key.write_text("k")
    key.chmod(0o600)  # written by root, the CLI's user: the service cannot read it
    return keys, [ring, key]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_the_folder_owner_is_taken_as_the_service_user_when_none_is_configured(
    tmp_path: Path,
) -> None:
    keys, files = _keystore(tmp_path, SERVICE_UID)
    ok, lines = readability_lines("", keys, files, allow_loose=False)
    assert not ok
    assert "CANNOT read" in lines[0] and "uid 4242" in lines[0]
    assert any(str(files[1]) in line for line in lines[1:])
    os.chown(files[1], SERVICE_UID, SERVICE_UID)
    # (pytest's own 0700 folders above tmp_path stay unsearchable for uid 4242: not our file.)
    checked = readability_lines("", keys, files, allow_loose=False)
    assert checked is not None and not any(str(files[1]) in line for line in checked[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_a_configured_user_is_checked_and_our_own_folder_is_unknown(tmp_path: Path) -> None:
    keys, files = _keystore(tmp_path, os.geteuid())
    assert readability_lines("", keys, files, allow_loose=False) is None  # never claims success
    checked = readability_lines(str(SERVICE_UID), keys, files, allow_loose=False)
    assert checked is not None and not checked[0]  # the folder (0700 root): not searchable
    with pytest.raises(ValueError, match="no such user"):
        readability_lines("no-such-user-here", keys, files, allow_loose=False)


ALLOW = "or set keys.allow_loose_key_files = true"


@pytest.fixture
def searchable() -> Iterator[Path]:
    """A folder every user may search, down from / (pytest's own folders are 0700)."""
    folder = Path(tempfile.mkdtemp())
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
@pytest.mark.parametrize(
    ("key_owner", "key_mode", "folder_mode", "said"),
    [
        pytest.param(0, 0o640, 0o750, f"chown it to uid {SERVICE_UID} and chmod 600", id="group"),
        pytest.param(SERVICE_UID, 0o644, 0o755, "(mode 0644): chmod 600", id="world-readable"),
        pytest.param(SERVICE_UID, 0o600, 0o770, "writable by group or others", id="folder"),
    ],
)
def test_key_files_the_service_would_refuse_are_reported_as_refused(
    searchable: Path, key_owner: int, key_mode: int, folder_mode: int, said: str
) -> None:
    """Readable by the service user (by group, say) is not enough: the service refuses a private
    key file that is not its alone, so the CLI says so, with the service's own fix hint."""
    keys, files = _keystore(searchable, SERVICE_UID)
    keys.chmod(folder_mode)
    key = files[1]
    os.chown(key, key_owner, SERVICE_UID)
    key.chmod(key_mode)
    checked = readability_lines("", keys, files, allow_loose=False)
    assert checked is not None
    ok, lines = checked
    assert not ok
    assert "uid 4242 will REFUSE these key files" in lines[0] and "serve does not start" in lines[0]
    assert len(lines) == 2 and said in lines[1] and ALLOW in lines[1]
    assert readability_lines("", keys, files, allow_loose=True) == (
        True,
        ["service user uid 4242 can read and will load every keystore file"],
    )
