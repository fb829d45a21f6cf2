"""The single-host StatusStore: one SQLite file shared by every worker process.

SQLite's file locks serialise writers across processes; `BEGIN IMMEDIATE` takes the write lock
before reading, so a lease or a revocation is one atomic step. Each process opens its own
connections (workers fork before the service starts): one for writes, one for reads.

Reads never wait for a write. A write waits up to `busy_timeout_seconds` for SQLite's write lock
while another process (a worker recording tokens, `sekisho revoke`) holds it; with one connection
per process behind one thread lock, the revocation refresh queued behind that waiting write and
the worker's view went stale (2 s): every exchange refused temporarily_unavailable under load.
In WAL mode a reader is never blocked by a writer, so reads use their own connection (query_only)
and lock, each inside its own read transaction: it sees the last commit at its start, and ends,
so the next read sees later commits (this process's own writes included) — a read transaction
left open would pin the connection to an old snapshot and serve a reinstated token as SUSPENDED.
"""

import os
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sekisho.status.models import (
    InForce,
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
CREATE TABLE IF NOT EXISTS suspended (
  list_id INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (list_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS suspensions (
  kind TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, operator TEXT NOT NULL,
  created_at INTEGER NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE IF NOT EXISTS token_names (
  kind TEXT NOT NULL, key TEXT NOT NULL, list_id INTEGER NOT NULL, idx INTEGER NOT NULL,
  expires_at INTEGER NOT NULL, PRIMARY KEY (kind, key, list_id, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS token_names_expiry ON token_names(expires_at);
"""
# `token_names` (added in session 11, created on the next open of an older file) holds the other
# names a revocation covers a token by (IssuedToken.also_named: its actor as a subject, the mTLS
# caller of an exchange with an actor token as a caller, each granted resource as an audience,
# each earlier actor in the inbound tokens' `act` chains as a caller and as a subject).
# Tokens recorded before it existed have none: they are found by their `tokens` columns only,
# and expire within tokens.max_lifetime_seconds.
_COLUMN = {"token": "jti", "subject": "subject", "caller": "caller", "audience": "audience"}
# What each kind of entry in force marks its tokens with: INVALID (final) or SUSPENDED. In this
# order (record marks revocations first, so a token also suspended changes status once).
_MARKS = {"revocations": "invalid", "suspensions": "suspended"}


class FileStatusStore:
    """StatusStore in an SQLite database at `path` (created 0600 with its folder)."""

    def __init__(self, path: Path, *, busy_timeout_seconds: float = 5.0) -> None:
        self._path = path
        self._timeout = busy_timeout_seconds
        # Each connection is used from worker threads in turn, under its own lock.
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._writer_pid = self._reader_pid = 0

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            try:
                conn = self._write_connection()
            except sqlite3.Error as exc:  # the first open (a busy WAL switch): not a bug
                raise StatusStoreError(f"status store {self._path}: {exc}") from exc
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
        """One read transaction on the read connection: the last committed state (a WAL
        snapshot), whatever write is in progress or waiting."""
        with self._read_lock:
            try:
                conn = self._read_connection()
                conn.execute("BEGIN")
                try:
                    yield conn
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")  # ends the snapshot: the next read is fresh
            except sqlite3.Error as exc:
                raise StatusStoreError(f"status store {self._path}: {exc}") from exc

    def _write_connection(self) -> sqlite3.Connection:
        if self._writer is None or self._writer_pid != os.getpid():  # a forked child: its own
            self._create_or_check_file()  # before SQLite creates it (0644)
            conn = self._open()
            conn.executescript(_SCHEMA)
            self._writer, self._writer_pid = conn, os.getpid()
        return self._writer

    def _read_connection(self) -> sqlite3.Connection:
        if self._reader is None or self._reader_pid != os.getpid():
            with self._write_lock:  # the file and tables exist before the first read
                self._write_connection()
            conn = self._open()
            conn.execute("PRAGMA query_only=ON")
            self._reader, self._reader_pid = conn, os.getpid()
        return self._reader

    def _create_or_check_file(self) -> None:
        """Create the file 0600, or refuse one others may write, never closing a descriptor of
        it: closing any descriptor of the file drops every POSIX lock the process holds on it
        (https://www.sqlite.org/howtocorrupt.html §2.2), those of this store's other connection
        and of any other store on the file in this process included (an embedded service and an
        in-process `sekisho revoke`). Another process's `sekisho revoke` then took itself for the
        last connection and removed the WAL on close, and this process's reads kept answering
        from the old one: a reinstated user stayed SUSPENDED on every worker.

        Raises: StatusStoreError (also when the folder or file cannot be made or linked: a raw
        OSError escaped the store's callers, so a lease answered INTERNAL and a start failed
        with a traceback)."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self._path.exists():
                _create_private(self._path)
            _refuse_writable_by_others(self._path, os.stat(self._path))
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise StatusStoreError(
                f"status store {self._path} (config key 'status_list.path'): cannot create or "
                f"open it: {exc.strerror or exc}{where}"
            ) from exc

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

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
            conn.executemany(
                "INSERT OR REPLACE INTO token_names VALUES (?, ?, ?, ?, ?)",
                [
                    (kind, key, t.list_id, t.idx, t.expires_at)
                    for t in tokens
                    for kind, key in t.also_named()
                ],
            )
            marked = 0
            for table, marks in _MARKS.items():  # revocations first: a token changes once
                active = {(r.kind, r.key) for r in _in_force(conn, table, now)}
                if not active:  # the usual case: nothing to look up per token
                    continue
                covered = [t for t in tokens if any(name in active for name in t.names())]
                marked += _mark(conn, marks, [(t.list_id, t.idx) for t in covered])
        return marked

    def revoke(self, now: int, revocation: Revocation) -> int:
        with self._write() as conn:
            return _put_in_force(conn, "revocations", now, revocation)

    def lift(self, kind: RevocationKind, key: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM revocations WHERE kind = ? AND key = ?", (kind, key))
            return cursor.rowcount > 0

    def revocations(self, now: int) -> list[Revocation]:
        with self._read() as conn:
            return _in_force(conn, "revocations", now)

    def suspend(self, now: int, suspension: Revocation) -> int:
        with self._write() as conn:
            return _put_in_force(conn, "suspensions", now, suspension)

    def reinstate(self, now: int, kind: RevocationKind, key: str) -> int | None:
        with self._write() as conn:
            cursor = conn.execute("DELETE FROM suspensions WHERE kind = ? AND key = ?", (kind, key))
            if cursor.rowcount == 0:
                return None
            # Live tokens another suspension in force still covers keep their mark.
            still: set[tuple[int, int]] = set()
            for other in _in_force(conn, "suspensions", now):
                still.update(_live(conn, other.kind, other.key, now))
            freed = 0  # tokens whose status changed: SUSPENDED before, VALID now
            for entry in _live(conn, kind, key, now):
                if entry in still:
                    continue
                unmarked = conn.execute(
                    "DELETE FROM suspended WHERE list_id = ? AND idx = ?", entry
                ).rowcount
                freed += bool(unmarked) and not _is_invalid(conn, entry)
        return freed

    def suspensions(self, now: int) -> list[Revocation]:
        with self._read() as conn:
            return _in_force(conn, "suspensions", now)

    def in_force(self, now: int) -> InForce:
        with self._read() as conn:  # one read transaction: one WAL snapshot for both tables
            return InForce(_in_force(conn, "revocations", now), _in_force(conn, "suspensions", now))

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        # One read transaction (a WAL snapshot): the INVALID and SUSPENDED sets as of one moment.
        # Read apart, a `revoke` then `reinstate` committed between the two reads (another
        # process: the CLI) served a token that was SUSPENDED, then INVALID, as VALID.
        with self._read() as conn:
            row = conn.execute("SELECT size FROM lists WHERE list_id = ?", (list_id,)).fetchone()
            if row is None:
                return None
            invalid = conn.execute("SELECT idx FROM invalid WHERE list_id = ?", (list_id,))
            found = frozenset(r[0] for r in invalid)
            suspended = conn.execute("SELECT idx FROM suspended WHERE list_id = ?", (list_id,))
            return ListSnapshot(list_id, row[0], found, frozenset(r[0] for r in suspended))

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
            conn.execute("DELETE FROM token_names WHERE expires_at < ?", (now,))
            retired = "SELECT list_id FROM lists WHERE next_index >= size AND retire_after < ?"
            for marks in _MARKS.values():
                conn.execute(f"DELETE FROM {marks} WHERE list_id IN ({retired})", (now,))  # noqa: S608
            conn.execute("DELETE FROM lists WHERE next_index >= size AND retire_after < ?", (now,))
            for table in _MARKS:
                conn.execute(f"DELETE FROM {table} WHERE until != 0 AND until <= ?", (now,))  # noqa: S608

    def close(self) -> None:
        with self._read_lock:
            if self._reader is not None and self._reader_pid == os.getpid():
                self._reader.close()
            self._reader = None
        with self._write_lock:
            if self._writer is not None and self._writer_pid == os.getpid():
                self._writer.close()
            self._writer = None


def _create_private(path: Path) -> None:
    """A new, empty WAL-mode database at `path`, 0600: made under a temporary name (mkstemp:
    0600), switched to WAL and closed, then linked into place, so no descriptor of `path` is ever
    closed. Switching a database to WAL answers "database is locked" at once, without waiting
    for busy_timeout, when another process switches it too: workers starting together on a new
    file did, and one of them failed its first lease. A creator that loses the race to link
    leaves the other's file alone."""
    fd, made = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    os.close(fd)
    try:
        conn = sqlite3.connect(made, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # kept in the file's header
        finally:
            conn.close()
        os.link(made, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(made)


def _refuse_writable_by_others(path: Path, info: os.stat_result) -> None:
    """Whoever may write the database may lift revocations: refuse it, and its folder, when group
    or others may write (the compile cache's rule for its entries). Raises: StatusStoreError."""
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StatusStoreError(f"status store {path} is writable by group or others: chmod 600")
    if path.parent.stat().st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StatusStoreError(
            f"status store folder {path.parent} is writable by group or others: chmod 700"
        )


def _in_force(conn: sqlite3.Connection, table: str, now: int) -> list[Revocation]:
    """The rows of `revocations` or `suspensions` in force at `now`, in the order they were put
    in force: `created_at` is to the second, so two of one second are in rowid order (a put is
    a new row, INSERT OR REPLACE included, and a new rowid is above every rowid in the table)."""
    rows = conn.execute(
        "SELECT kind, key, reason, operator, created_at, until FROM "  # noqa: S608
        f"{table} WHERE until = 0 OR until > ? ORDER BY created_at, rowid",
        (now,),
    ).fetchall()
    return [Revocation(*row) for row in rows]


def _covered(conn: sqlite3.Connection, kind: str, key: str, now: int) -> list[tuple[int, int, int]]:
    """(list_id, idx, expires_at) of the recorded tokens `kind` = `key` names that have not
    expired: by their own column, or by another name (token_names), each token once. Two index
    lookups: the cost follows the tokens covered, not the tokens recorded."""
    return conn.execute(
        f"SELECT list_id, idx, expires_at FROM tokens WHERE {_COLUMN[kind]} = ? "  # noqa: S608
        "AND expires_at >= ? UNION SELECT list_id, idx, expires_at FROM token_names "
        "WHERE kind = ? AND key = ? AND expires_at >= ?",
        (key, now, kind, key, now),
    ).fetchall()


def _live(conn: sqlite3.Connection, kind: str, key: str, now: int) -> list[tuple[int, int]]:
    """(list_id, idx) of the recorded tokens `kind` = `key` names that have not expired."""
    return [(row[0], row[1]) for row in _covered(conn, kind, key, now)]


def _put_in_force(conn: sqlite3.Connection, table: str, now: int, entry: Revocation) -> int:
    """Store a revocation or suspension, unless one of its kind and key is in force already
    (StatusStore.revoke: the first stands), and mark the live tokens it covers; returns how many
    of them changed status (_mark)."""
    rows = _covered(conn, entry.kind, entry.key, now)
    until = entry.until
    if entry.kind == "token" and rows:
        until = max(row[2] for row in rows)  # ends when the token does
    if not _is_in_force(conn, table, entry.kind, entry.key, now):  # else elapsed, or none
        conn.execute(
            f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?, ?)",  # noqa: S608
            (entry.kind, entry.key, entry.reason, entry.operator, entry.created_at, until),
        )
    return _mark(conn, _MARKS[table], [(row[0], row[1]) for row in rows])


def _is_in_force(conn: sqlite3.Connection, table: str, kind: str, key: str, now: int) -> bool:
    row = conn.execute(
        f"SELECT 1 FROM {table} WHERE kind = ? AND key = ? AND (until = 0 OR until > ?)",  # noqa: S608
        (kind, key, now),
    ).fetchone()
    return row is not None


def _is_invalid(conn: sqlite3.Connection, entry: tuple[int, int]) -> bool:
    row = conn.execute("SELECT 1 FROM invalid WHERE list_id = ? AND idx = ?", entry).fetchone()
    return row is not None


def _mark(conn: sqlite3.Connection, marks: str, entries: Sequence[tuple[int, int]]) -> int:
    """Mark `entries` INVALID or SUSPENDED (`marks`: the table) and return how many changed
    status (the StatusStore count): newly INVALID (VALID or SUSPENDED before), or newly
    SUSPENDED and not INVALID (VALID before). An entry already so marked, or INVALID, is left
    as it reads. The SUSPENDED mark is kept on an INVALID entry too (it reads INVALID)."""
    changed = 0
    for entry in entries:
        added = conn.execute(f"INSERT OR IGNORE INTO {marks} VALUES (?, ?)", entry).rowcount  # noqa: S608
        changed += bool(added) and (marks == "invalid" or not _is_invalid(conn, entry))
    return changed
