"""A status database written before session 11 (no `token_names` table) keeps working: the table
is created on the next open, tokens recorded before the upgrade are found by their own columns
(subject, caller, audience, jti) as they were, and tokens recorded after it by every name.
Expired names are pruned with their tokens."""

import os
import sqlite3
from pathlib import Path

from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import IssuedToken, Revocation, subject_key

NOW = 1_800_000_000
ALICE = subject_key("https://idp.example.com", "alice")
BOB = subject_key("https://idp.example.com", "bob")
CRM_MCP = "https://crm.example.com/mcp"

# The tables as the session 10 release created them (filestore.py _SCHEMA before token_names).
_SESSION_10_SCHEMA = """
CREATE TABLE lists (
  list_id INTEGER PRIMARY KEY AUTOINCREMENT, size INTEGER NOT NULL,
  next_index INTEGER NOT NULL, retire_after INTEGER NOT NULL);
CREATE TABLE tokens (
  jti TEXT PRIMARY KEY, subject TEXT NOT NULL, caller TEXT NOT NULL, audience TEXT NOT NULL,
  list_id INTEGER NOT NULL, idx INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE invalid (
  list_id INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (list_id, idx)) WITHOUT ROWID;
CREATE TABLE revocations (
  kind TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, operator TEXT NOT NULL,
  created_at INTEGER NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (kind, key));
CREATE TABLE suspended (
  list_id INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (list_id, idx)) WITHOUT ROWID;
CREATE TABLE suspensions (
  kind TEXT NOT NULL, key TEXT NOT NULL, reason TEXT NOT NULL, operator TEXT NOT NULL,
  created_at INTEGER NOT NULL, until INTEGER NOT NULL, PRIMARY KEY (kind, key));
INSERT INTO lists VALUES (1, 10, 2, 1800000390);
INSERT INTO tokens VALUES ('old-a', '{alice}', 'agent-1', 'https://crm-as', 1, 0, 1800000300);
INSERT INTO tokens VALUES ('old-b-by-a', '{bob}', 'alice', 'https://crm-as', 1, 1, 1800000300);
"""


def _session_10_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    conn = sqlite3.connect(path)
    conn.executescript(_SESSION_10_SCHEMA.format(alice=ALICE, bob=BOB))
    conn.close()


def test_an_older_file_gains_the_names_and_keeps_its_tokens(tmp_path: Path) -> None:
    path = tmp_path / "status" / "status.db"
    _session_10_file(path)
    store = FileStatusStore(path)
    try:
        lease = store.lease(
            NOW, list_size=10, lease_size=2, use_until=NOW + 60, valid_until=NOW + 390
        )
        assert (lease.list_id, lease.start) == (1, 2)  # the old leases are kept
        acted = IssuedToken("new-b-by-a", BOB, "alice", "https://crm-as", 1, 2, NOW + 300, ALICE)
        store.record(NOW, [acted])
        revocation = Revocation("subject", ALICE, "INC-1", "sec", NOW)
        # old-a by its subject column; new-b-by-a by its actor; old-b-by-a (ALICE acted in it
        # before the upgrade) has no names recorded: `revoke caller alice` still finds it.
        assert store.revoke(NOW, revocation) == 2
        assert store.snapshot(1).invalid == {0, 2}  # type: ignore[union-attr]
        # It finds old-b-by-a and new-b-by-a; only old-b-by-a changes status (counted).
        assert store.revoke(NOW, Revocation("caller", "alice", "INC-1", "sec", NOW)) == 1
        assert store.snapshot(1).invalid == {0, 1, 2}  # type: ignore[union-attr]
    finally:
        store.close()


def _count(path: Path, table: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608
    finally:
        conn.close()


def test_names_are_pruned_with_their_tokens(tmp_path: Path) -> None:
    path = tmp_path / "status" / "status.db"
    store = FileStatusStore(path)
    try:
        store.lease(NOW, list_size=10, lease_size=2, use_until=NOW + 60, valid_until=NOW + 390)
        token = IssuedToken("t", BOB, "alice", "https://as", 1, 0, NOW + 300, ALICE, (CRM_MCP,))
        store.record(NOW, [token])
        store.prune(NOW + 300)  # expires_at is the last second the token is valid
        assert (_count(path, "tokens"), _count(path, "token_names")) == (1, 2)
        store.prune(NOW + 301)
        assert (_count(path, "tokens"), _count(path, "token_names")) == (0, 0)
    finally:
        store.close()
