"""The SQLite store's reads (the revocation refresh every worker runs, served lists) never wait for
a write, and always see the last commit.

Under load (tests/integration/test_revocation_workers.py at load 11) a worker's write waited for
SQLite's write lock, held by another process (the other worker recording tokens, `sekisho
revoke`), for up to busy_timeout, holding the store's one connection; the worker's revocation
refresh queued behind it, the view went stale and every exchange was refused
temporarily_unavailable. Here another connection holds the write lock (with a write of its own
not yet committed) while this store's write waits for it.
"""

import asyncio
import linecache
import multiprocessing
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from sekisho.status.filestore import FileStatusStore
from sekisho.status.revocations import RevocationGate

from tests.fakes.clock import FakeClock
from tests.unit.status.test_suspension_contract import ALICE, BOB, NOW, _entry, _list, _token

GIVE_UP_SECONDS = 30.0  # a hang guard, never reached when the test passes
BUSY_TIMEOUT = 60.0  # the waiting write never gives up while the test looks


def _waiting_for_the_write_lock(thread: threading.Thread) -> bool:
    """Whether `thread` is inside this store's `BEGIN IMMEDIATE` (waiting for SQLite's lock)."""
    frame = sys._current_frames().get(thread.ident or 0)
    return frame is not None and "BEGIN IMMEDIATE" in linecache.getline(
        frame.f_code.co_filename, frame.f_lineno
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "status" / "status.db"


@pytest.fixture
def blocker(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection (the CLI, the other worker)."""
    schema = FileStatusStore(path)
    schema.live_lists(NOW)  # the file and its tables exist
    schema.close()
    conn = sqlite3.connect(path, isolation_level=None)
    yield conn
    conn.close()


def test_a_refresh_reads_the_last_commit_while_a_write_waits_for_the_lock(
    path: Path, blocker: sqlite3.Connection
) -> None:
    store = FileStatusStore(path, busy_timeout_seconds=BUSY_TIMEOUT)
    clock = FakeClock(NOW)
    gate = RevocationGate(store, clock, max_stale_seconds=2.0)
    store.revoke(NOW, _entry("subject", ALICE))
    asyncio.run(gate.refresh())
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock, with an uncommitted revocation:
    blocker.execute("INSERT INTO revocations VALUES ('caller', 'mallory', 'x', 'y', 0, 0)")
    # Its own thread name: the first "ThreadPoolExecutor-…" thread of the process was taken for
    # this pool's, and an idle one left by an earlier test (or a library) never waits here.
    with ThreadPoolExecutor(1, thread_name_prefix="revoke-waiting-for-the-lock") as pool:
        waiting: Future[int] = pool.submit(store.revoke, NOW, _entry("subject", BOB))
        (worker,) = [
            t for t in threading.enumerate() if t.name.startswith("revoke-waiting-for-the-lock")
        ]
        deadline = time.monotonic() + GIVE_UP_SECONDS
        while not _waiting_for_the_write_lock(worker):
            assert time.monotonic() < deadline, "the write never reached BEGIN IMMEDIATE"
            time.sleep(0.001)

        clock.advance(5.0)  # older than max_stale: only a refresh now keeps the gate open
        asyncio.run(gate.refresh())
        assert not waiting.done(), "the refresh waited for the write (until it gave up)"
        assert {r.key for r in store.revocations(NOW)} == {ALICE}  # the last commit, only
        assert gate.revoked([("subject", ALICE)])
        assert not gate.revoked([("subject", BOB)])  # fresh (not stale), BOB not yet revoked

        blocker.execute("ROLLBACK")
        assert waiting.result(timeout=GIVE_UP_SECONDS) == 0
    asyncio.run(gate.refresh())
    assert {r.key for r in store.revocations(NOW)} == {ALICE, BOB}  # its own write, next read
    assert gate.revoked([("subject", BOB)])
    store.close()


def _as_the_cli(path: Path, action: str) -> None:
    """`sekisho revoke suspend|reinstate subject` alice: its own process and connection, closed
    at exit (the last connection to close checkpoints and removes the WAL)."""
    cli = FileStatusStore(path)
    if action == "suspend":
        cli.suspend(NOW, _entry("subject", ALICE))
    else:
        cli.reinstate(NOW, "subject", ALICE)
    cli.close()


def _another_process(path: Path, action: str) -> None:
    process = multiprocessing.get_context("spawn").Process(target=_as_the_cli, args=(path, action))
    process.start()
    process.join(GIVE_UP_SECONDS)
    assert process.exitcode == 0


def test_each_read_sees_the_commits_before_it(path: Path) -> None:
    # Reinstated by the CLI, alice stayed SUSPENDED on every worker when the read connection
    # looked at a WAL the CLI had removed (the file check closed a descriptor of the database,
    # dropping this process's locks), or would with a read transaction left open.
    service = FileStatusStore(path)
    try:
        list_id = _list(service)
        service.record(NOW, [_token("a1", ALICE, 3, list_id)])

        def suspended() -> frozenset[int]:
            snapshot = service.snapshot(list_id)
            assert snapshot is not None
            assert bool(snapshot.suspended) == bool(service.suspensions(NOW))
            return snapshot.suspended

        for _ in range(2):
            assert suspended() == frozenset()
            _another_process(path, "suspend")
            assert suspended() == {3}
            _another_process(path, "reinstate")
            assert suspended() == frozenset()
        assert service.suspend(NOW, _entry("subject", ALICE)) == 1  # its own writes
        assert suspended() == {3}
        assert service.reinstate(NOW, "subject", ALICE) == 1
        assert suspended() == frozenset()
    finally:
        service.close()


def test_the_read_connection_cannot_write(path: Path) -> None:
    store = FileStatusStore(path)
    try:
        assert store.revocations(NOW) == []  # first read: the tables exist
        with store._read() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM revocations")
    finally:
        store.close()


def test_a_second_store_in_the_process_keeps_the_first_ones_locks(path: Path) -> None:
    # Two stores on one file in one process (a service and an in-process `sekisho revoke list`,
    # two embedded services): the second one's file check opened and closed a descriptor of the
    # database while the first held SQLite's locks on it, which drops every POSIX lock the process
    # holds on the file; the CLI in another process then took itself for the last connection,
    # removed the WAL, and the first store kept reading the removed one (alice stayed SUSPENDED).
    service = FileStatusStore(path)
    try:
        list_id = _list(service)
        service.record(NOW, [_token("a1", ALICE, 3, list_id)])
        assert service.suspensions(NOW) == []  # both of the service's connections are open
        second = FileStatusStore(path)
        assert second.revocations(NOW) == []
        second.close()
        for _ in range(2):
            _another_process(path, "suspend")
            assert [s.key for s in service.suspensions(NOW)] == [ALICE]
            _another_process(path, "reinstate")
            assert service.suspensions(NOW) == []
    finally:
        service.close()
