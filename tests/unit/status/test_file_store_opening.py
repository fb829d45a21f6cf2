"""Opening the SQLite store on a new file, as workers starting together do.

Switching a database to WAL answers "database is locked" at once, without waiting for
busy_timeout, while another process switches it too: of four processes opening a new file
together, one failed its first lease about once in 75 starts, and the error left the store as a
bare sqlite3.OperationalError (an exchange answered INTERNAL instead of temporarily_unavailable).
"""

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sekisho.status import filestore
from sekisho.status.filestore import FileStatusStore
from sekisho.status.store import StatusStoreError

NOW = 1_800_000_000
WAL = 2  # the file format version bytes (offsets 18, 19) of a database in WAL mode


def _lease(store: FileStatusStore) -> None:
    store.lease(NOW, list_size=10, lease_size=5, use_until=NOW + 60, valid_until=NOW + 390)


def test_a_new_file_is_already_in_wal_mode_when_it_appears(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "status" / "status.db"
    appeared: list[bytes] = []
    real_link = os.link

    def link(source: str, target: Path) -> None:  # the moment another worker can open it
        appeared.append(Path(source).read_bytes()[18:20])
        real_link(source, target)

    monkeypatch.setattr(filestore.os, "link", link)
    store = FileStatusStore(path)
    _lease(store)
    store.close()
    assert appeared == [bytes([WAL, WAL])]
    assert sorted(p.name for p in path.parent.iterdir()) == ["status.db"]  # nothing left over


def test_a_failed_first_open_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "status.db"
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    blocker = sqlite3.connect(path, isolation_level=None)  # not WAL: the store must switch it
    blocker.execute("BEGIN EXCLUSIVE")
    store = FileStatusStore(path, busy_timeout_seconds=0.05)
    try:
        with pytest.raises(StatusStoreError, match="database is locked"):
            _lease(store)
        blocker.execute("ROLLBACK")
        _lease(store)  # the next call opens it
    finally:
        blocker.close()
        store.close()


def _folder_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "var").write_text("")
    return tmp_path / "var" / "status.db"


def _hard_links_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def link(source: str, target: Path) -> None:  # a filesystem without hard links
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), source, str(target))

    monkeypatch.setattr(filestore.os, "link", link)
    return tmp_path / "status" / "status.db"


def _no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    def mkstemp(**kwargs: object) -> tuple[int, str]:  # a folder this user may not write
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(kwargs["dir"]))

    monkeypatch.setattr(filestore.tempfile, "mkstemp", mkstemp)
    return tmp_path / "status" / "status.db"


@pytest.mark.parametrize(
    "cause",
    [
        pytest.param(_folder_is_a_file, id="folder-is-a-file"),
        pytest.param(_hard_links_refused, id="link-refused"),
        pytest.param(_no_temporary_file, id="folder-not-writable"),
    ],
)
def test_a_file_that_cannot_be_made_is_a_store_error_naming_the_setting(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cause: Callable[[Path, pytest.MonkeyPatch], Path],
) -> None:
    # A raw OSError escaped: a lease answered INTERNAL instead of temporarily_unavailable, a
    # worker's start failed with a traceback, `sekisho revoke` printed only the errno.
    path = cause(tmp_path, monkeypatch)
    store = FileStatusStore(path)
    try:
        with pytest.raises(StatusStoreError, match=r"status_list\.path") as refused:
            _lease(store)
        assert str(path) in str(refused.value) and isinstance(refused.value.__cause__, OSError)
        with pytest.raises(StatusStoreError, match=r"status_list\.path"):
            store.in_force(NOW)  # reads open the file first too
    finally:
        store.close()
    if path.parent.is_dir():
        assert list(path.parent.iterdir()) == []  # no temporary file left behind
