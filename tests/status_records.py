"""What the service's workers have written to a file status store, for tests that wait on it."""

import contextlib
import sqlite3
from pathlib import Path

from sekisho.status.models import subject_key


def recorded_tokens(db: Path, issuer: str, sub: str) -> int:
    """How many of `sub`'s minted tokens are in the status store at `db` (each worker flushes its
    records every flush_interval_seconds), read on a read-only connection."""
    with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)) as conn:
        query = "SELECT COUNT(*) FROM tokens WHERE subject = ?"
        return int(conn.execute(query, (subject_key(issuer, sub),)).fetchone()[0])
