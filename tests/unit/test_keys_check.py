"""`sekisho keys` after a change: can the service user read what was written (issue 19 class 1)?

Mode bits are checked as the kernel would for that user (tests run as root, who reads anything,
so the files are judged, not opened)."""

import os
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
    ok, lines = readability_lines("", keys, files)
    assert not ok
    assert "CANNOT read" in lines[0] and "uid 4242" in lines[0]
    assert any(str(files[1]) in line for line in lines[1:])
    os.chown(files[1], SERVICE_UID, SERVICE_UID)
    # (pytest's own 0700 folders above tmp_path stay unsearchable for uid 4242: not our file.)
    assert not any(str(files[1]) in line for line in readability_lines("", keys, files)[1])


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to chown")
def test_a_configured_user_is_checked_and_our_own_folder_is_unknown(tmp_path: Path) -> None:
    keys, files = _keystore(tmp_path, os.geteuid())
    ok, lines = readability_lines("", keys, files)
    assert ok and "unknown" in lines[0]  # says it cannot know, never claims success
    ok, lines = readability_lines(str(SERVICE_UID), keys, files)
    assert not ok  # the folder itself (0700 root) is not searchable for uid 4242
    with pytest.raises(ValueError, match="no such user"):
        readability_lines("no-such-user-here", keys, files)
