"""One side of an alternating A/B round for the status store's extra token names (session 11:
each minted token is also recorded under its actor, the mTLS caller of a delegated exchange and
each granted resource, so `revoke subject|caller|audience` mark every live token the gate refuses).

Measures, on the file store (SQLite, WAL) of the code on PYTHONPATH, in CPU seconds of this
process (SQLite runs in it):
- record: the flush thread's batched write, per token, for plain ID-JAG tokens (no actor, no
  resource: no extra name) and for delegated access tokens (actor + peer + one resource: three
  extra names; the base code records them without);
- revoke: `revoke subject` of a user covering 2,000 of 40,000 live tokens (as the subject only,
  so both sides mark the same 2,000), and the bytes per live token of the database file;
- with `--redis`, the Redis store instead: record's CPU in redis-server per token (INFO cpu; the
  record script runs there) and `used_memory` per token, plain and delegated.

Run alternating base and new (base = a detached worktree of the commit before the change):

    for i in 1 2 3; do
      PYTHONPATH=BASE/server .venv/bin/python bench/status_names_ab.py
      PYTHONPATH=NEW/server .venv/bin/python bench/status_names_ab.py
    done

Prints one JSON line.
"""

import dataclasses
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sekisho
from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import IssuedToken, Revocation, subject_key

NOW = 1_800_000_000
TOKENS = 20_000
LIVE = 40_000
BATCH = 1_000
IDP = "https://idp.example.com"
_FIELDS = {f.name for f in dataclasses.fields(IssuedToken)}


def _token(n: int, list_id: int, idx: int, *, delegated: bool, users: int) -> IssuedToken:
    extra: dict[str, Any] = {}
    if delegated:
        extra = {
            "actor": subject_key(IDP, f"agent-user{n % 50}"),
            "resources": (f"https://mcp{n % 20}.example.com/mcp",),
            "peer": "spiffe://example.org/ns/gw/sa/gateway",
        }
    return IssuedToken(
        f"jti-{n:022d}",
        subject_key(IDP, f"user{n % users}"),
        f"agent-user{n % 50}" if delegated else "spiffe://example.org/ns/a/sa/agent",
        f"https://as{n % 20}.example.com",
        list_id,
        idx,
        NOW + 300,
        **{k: v for k, v in extra.items() if k in _FIELDS},  # the base knows none of them
    )


def _store(root: Path, name: str, size: int) -> tuple[FileStatusStore, int]:
    store = FileStatusStore(root / name / "status.db")
    lease = store.lease(NOW, list_size=size, lease_size=size, use_until=NOW + 60,
                        valid_until=NOW + 400)  # fmt: skip
    return store, lease.list_id


def record_cpu_us(root: Path, *, delegated: bool) -> float:
    """CPU µs per token of store.record() in batches of BATCH."""
    store, list_id = _store(root, f"record-{delegated}", TOKENS)
    tokens = [_token(n, list_id, n, delegated=delegated, users=1_000) for n in range(TOKENS)]
    started = time.process_time()
    for start in range(0, TOKENS, BATCH):
        store.record(NOW, tokens[start : start + BATCH])
    spent = time.process_time() - started
    store.close()
    return round(1e6 * spent / TOKENS, 2)


def revoke_cpu_ms(root: Path) -> tuple[float, int, float]:
    """CPU ms of one `revoke subject` covering LIVE / 20 tokens, marked count, bytes per token."""
    store, list_id = _store(root, "revoke", LIVE)
    tokens = [_token(n, list_id, n, delegated=True, users=20) for n in range(LIVE)]
    for start in range(0, LIVE, BATCH):
        store.record(NOW, tokens[start : start + BATCH])
    started = time.process_time()
    marked = store.revoke(NOW, Revocation("subject", subject_key(IDP, "user0"), "b", "b", NOW))
    spent = time.process_time() - started
    store.close()
    path = root / "revoke" / "status.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return round(1e3 * spent, 2), marked, round(path.stat().st_size / LIVE, 1)


def _redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def redis_record(*, delegated: bool) -> tuple[float, float]:
    """redis-server CPU µs and used_memory bytes per recorded token."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.redis_server
    from sekisho.status.redisstore import RedisStatusStore

    from tests.redis_server import start_redis

    server = start_redis()
    try:
        store = RedisStatusStore.from_url(server.url)
        client = store._client  # the bench reads the server's own counters
        lease = store.lease(NOW, list_size=TOKENS, lease_size=TOKENS, use_until=NOW + 60,
                            valid_until=NOW + 400)  # fmt: skip
        now = int(time.time())  # keys expire from exp: keep them alive while measured
        tokens = [
            dataclasses.replace(
                _token(n, lease.list_id, n, delegated=delegated, users=1_000),
                expires_at=now + 300,
            )
            for n in range(TOKENS)
        ]
        memory, cpu = int(client.info("memory")["used_memory"]), _redis_cpu(client)
        for start in range(0, TOKENS, BATCH):
            store.record(now, tokens[start : start + BATCH])
        spent = _redis_cpu(client) - cpu
        grown = int(client.info("memory")["used_memory"]) - memory
        store.close()
    finally:
        server.stop()
    return round(1e6 * spent / TOKENS, 2), round(grown / TOKENS, 1)


def main() -> None:
    if "--redis" in sys.argv:
        plain_us, plain_bytes = redis_record(delegated=False)
        delegated_us, delegated_bytes = redis_record(delegated=True)
        print(json.dumps({
            "side": "new" if "peer" in _FIELDS else "base", "store": "redis",
            "record_plain_server_us": plain_us, "record_delegated_server_us": delegated_us,
            "plain_bytes_per_token": plain_bytes, "delegated_bytes_per_token": delegated_bytes,
        }))  # fmt: skip
        return
    with tempfile.TemporaryDirectory(prefix="sekisho-names-ab-") as tmp:
        root = Path(tmp)
        plain = record_cpu_us(root, delegated=False)
        delegated = record_cpu_us(root, delegated=True)
        revoke_ms, marked, per_token = revoke_cpu_ms(root)
    side = "new" if "peer" in _FIELDS else "base"
    print(json.dumps({
        "side": side, "code": str(Path(sekisho.__file__).parent),
        "record_plain_us": plain, "record_delegated_us": delegated,
        "revoke_subject_ms": revoke_ms, "revoke_marked": marked, "db_bytes_per_token": per_token,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
