"""The single-host StatusStore: one SQLite file shared by every worker process.

SQLite's file locks serialise writers across processes; `BEGIN IMMEDIATE` takes the write lock
before reading, so a lease or a revocation is one atomic step. Each process opens its own
connection (workers fork before the service starts).
"""

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sekisho.status.models import (
    KINDS,
    IssuedToken,
    Lease,
    ListSnapshot,
    Revocation,
    RevocationKind,
)
from sekisho.status.store import StatusStoreError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lists (
  list_id INTEGER PRIMARY KEY AUTOINCREMENT, size INTEGER NOT NULL,
  next_index INTEGER NOT NULL, retire_after INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  jti TEXT PRIMARY KEY, subject TEXT NOT NULL, caller TEXT NOT NULL, audience TEXT NOT NULL,
  list_id INTEGER NOT NULL, idx INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tokens_subject ON tokens(subject);
CREATE INDEX IF NOT EXISTS tokens_caller ON tokens(caller);
CREATE INDEX IF NOT EXISTS tokens_audience ON tokens(audience);
CREATE INDEX IF NOT EXISTS tokens_expiry ON tokens(expires_at);
CREATE TABLE IF NOT EXISTS invalid (
  list_id INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (list_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS revocations (
  kind TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, operator TEXT NOT NULL,
  created_at INTEGER NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (kind, key));
"""
_COLUMN = {"token": "jti", "subject": "subject", "caller": "caller", "audience": "audience"}


class FileStatusStore:
    """StatusStore in an SQLite database at `path` (created 0600 with its folder)."""

    def __init__(self, path: Path, *, busy_timeout_seconds: float = 5.0) -> None:
        self._path = path
        self._timeout = busy_timeout_seconds
        self._lock = threading.Lock()  # one connection, used from worker threads in turn
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StatusStoreError(f"status store {self._path}: {exc}") from exc

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as exc:
                raise StatusStoreError(f"status store {self._path}: {exc}") from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None or self._pid != os.getpid():  # a forked child needs its own
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                _refuse_writable_by_others(self._path, os.fstat(fd))
            finally:
                os.close(fd)
            conn = sqlite3.connect(
                self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def lease(
        self, now: int, *, list_size: int, lease_size: int, use_until: int, valid_until: int
    ) -> Lease:
        with self._write() as conn:
            row = conn.execute(
                "SELECT list_id, size, next_index FROM lists WHERE next_index < size "
                "ORDER BY list_id DESC LIMIT 1"
            ).fetchone()
            if row is None:
                cursor = conn.execute(
                    "INSERT INTO lists (size, next_index, retire_after) VALUES (?, 0, 0)",
                    (list_size,),
                )
                row = (cursor.lastrowid, list_size, 0)
            list_id, size, start = row
            end = min(size, start + lease_size)
            conn.execute(
                "UPDATE lists SET next_index = ?, retire_after = MAX(retire_after, ?) "
                "WHERE list_id = ?",
                (end, valid_until, list_id),
            )
        return Lease(list_id=list_id, start=start, end=end, use_until=use_until)

    def record(self, now: int, tokens: Sequence[IssuedToken]) -> int:
        if not tokens:
            return 0
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (t.jti, t.subject, t.caller, t.audience, t.list_id, t.idx, t.expires_at)
                    for t in tokens
                ],
            )
            active = {(r.kind, r.key) for r in _revocations(conn, now)}
            covered = [t for t in tokens if any((k, t.key(k)) in active for k in KINDS)]
            _mark(conn, [(t.list_id, t.idx) for t in covered])
        return len(covered)

    def revoke(self, now: int, revocation: Revocation) -> int:
        column = _COLUMN[revocation.kind]
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT list_id, idx, expires_at FROM tokens WHERE {column} = ? "  # noqa: S608
                "AND expires_at >= ?",
                (revocation.key, now),
            ).fetchall()
            until = revocation.until
            if revocation.kind == "token" and rows:
                until = max(row[2] for row in rows)  # ends when the token does
            conn.execute(
                "INSERT OR REPLACE INTO revocations VALUES (?, ?, ?, ?, ?, ?)",
                (
                    revocation.kind,
                    revocation.key,
                    revocation.reason,
                    revocation.operator,
                    revocation.created_at,
                    until,
                ),
            )
            _mark(conn, [(row[0], row[1]) for row in rows])
        return len(rows)

    def lift(self, kind: RevocationKind, key: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM revocations WHERE kind = ? AND key = ?", (kind, key))
            return cursor.rowcount > 0

    def revocations(self, now: int) -> list[Revocation]:
        with self._read() as conn:
            return _revocations(conn, now)

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        with self._read() as conn:
            row = conn.execute("SELECT size FROM lists WHERE list_id = ?", (list_id,)).fetchone()
            if row is None:
                return None
            invalid = conn.execute("SELECT idx FROM invalid WHERE list_id = ?", (list_id,))
            return ListSnapshot(list_id, row[0], frozenset(r[0] for r in invalid))

    def live_lists(self, now: int) -> list[int]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT list_id FROM lists WHERE next_index < size OR retire_after >= ? "
                "ORDER BY list_id",
                (now,),
            )
            return [row[0] for row in rows]

    def prune(self, now: int) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM tokens WHERE expires_at < ?", (now,))
            retired = "SELECT list_id FROM lists WHERE next_index >= size AND retire_after < ?"
            conn.execute(f"DELETE FROM invalid WHERE list_id IN ({retired})", (now,))  # noqa: S608
            conn.execute("DELETE FROM lists WHERE next_index >= size AND retire_after < ?", (now,))
            conn.execute("DELETE FROM revocations WHERE until != 0 AND until <= ?", (now,))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


def _refuse_writable_by_others(path: Path, info: os.stat_result) -> None:
    """Whoever may write the database may lift revocations: refuse it, and its folder, when group
    or others may write (the compile cache's rule for its entries). Raises: StatusStoreError."""
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StatusStoreError(f"status store {path} is writable by group or others: chmod 600")
    if path.parent.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StatusStoreError(
            f"status store folder {path.parent} is writable by group or others: chmod 700"
        )


def _revocations(conn: sqlite3.Connection, now: int) -> list[Revocation]:
    rows = conn.execute(
        "SELECT kind, key, reason, operator, created_at, until FROM revocations "
        "WHERE until = 0 OR until > ? ORDER BY created_at",
        (now,),
    ).fetchall()
    return [Revocation(*row) for row in rows]


def _mark(conn: sqlite3.Connection, entries: Sequence[tuple[int, int]]) -> None:
    conn.executemany("INSERT OR IGNORE INTO invalid VALUES (?, ?)", entries)
