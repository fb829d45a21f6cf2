"""Red team, session 5: a served status list is one moment of the store, on both backends.

snapshot() read the INVALID set, then the SUSPENDED set, in two separate reads. A token that was
SUSPENDED, then revoked (INVALID, final) and its suspension reinstated by another process (the
`sekisho revoke` CLI) between those two reads, was in neither set read: the list served it VALID,
signed, for downstreams to cache for the list's ttl, although it was never VALID at any moment
of the read. Each test runs that revoke + reinstate exactly between the reads the reader makes
(or, once it makes them as one, just before them): the token must read INVALID or SUSPENDED.

The revocation view every worker refreshes (RevocationGate) had the same fault: it read the
revocations, then the suspensions. Bob revoked and alice's suspension reinstated between those
reads gave a view with neither in force, a state the store never had: for one poll interval both
were served (alice rightly, bob not).
"""

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from sekisho.status.filestore import FileStatusStore
from sekisho.status.redisstore import RedisStatusStore
from sekisho.status.revocations import RevocationGate
from sekisho.status.store import StatusStore

from tests.fakes.clock import FakeClock
from tests.redis_server import start_redis
from tests.unit.status.test_suspension_contract import ALICE, BOB, NOW, _entry, _list, _token

Between = Callable[[], None]


def _escalate(writer: StatusStore) -> Between:
    """What the other process does: revoke alice's suspended token, then lift her suspension."""

    def escalate() -> None:
        writer.revoke(NOW + 1, _entry("token", "a1"))
        writer.reinstate(NOW + 1, "subject", ALICE)

    return escalate


def _suspended_token(store: StatusStore) -> int:
    list_id = _list(store)
    store.record(NOW, [_token("a1", ALICE, 3, list_id)])
    assert store.suspend(NOW, _entry("subject", ALICE)) == 1
    return list_id


def _never_valid(store: StatusStore, list_id: int) -> None:
    snapshot = store.snapshot(list_id)
    assert snapshot is not None
    assert 3 in snapshot.invalid | snapshot.suspended, "a never-VALID token read VALID"


def _revoke_bob_reinstate_alice(writer: StatusStore) -> Between:
    """What the other process does to the revocation view: at every moment of the store alice is
    suspended or bob is revoked (or both)."""

    def change() -> None:
        writer.revoke(NOW + 1, _entry("subject", BOB))
        writer.reinstate(NOW + 1, "subject", ALICE)

    return change


def _gate_sees_a_moment_of_the_store(reader: StatusStore) -> None:
    gate = RevocationGate(reader, FakeClock(NOW + 2), max_stale_seconds=2.0)
    asyncio.run(gate.refresh())
    assert gate.revoked([("subject", ALICE)]) or gate.revoked([("subject", BOB)]), (
        "the view had neither alice's suspension nor bob's revocation"
    )


class _Interleaved:
    """A sqlite3 connection that runs `between` once, just before a query naming `table`."""

    def __init__(self, conn: sqlite3.Connection, between: Between, table: str) -> None:
        self._conn = conn
        self._between: Between | None = between
        self._table = f"FROM {table} "

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self._table in sql and self._between is not None:
            self._between, between = None, self._between
            between()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_file_snapshot_reads_both_sets_at_one_moment(tmp_path: Path) -> None:
    path = tmp_path / "status" / "status.db"
    reader, writer = FileStatusStore(path), FileStatusStore(path)  # the service, the CLI
    try:
        list_id = _suspended_token(reader)
        real = reader._read_connection()
        interleaved = _Interleaved(real, _escalate(writer), "suspended")
        reader._read_connection = lambda: interleaved  # type: ignore[assignment,return-value]
        _never_valid(reader, list_id)
        assert interleaved._between is None  # the other process did run in between
        reader._read_connection = lambda: real  # type: ignore[method-assign]
        after = reader.snapshot(list_id)
        assert after is not None and after.invalid == {3}  # the next read sees the revocation
    finally:
        reader.close()
        writer.close()


def _suspended_and_revocation_view(store: StatusStore) -> None:
    list_id = _list(store)
    store.record(NOW, [_token("a1", ALICE, 3, list_id), _token("b1", BOB, 4, list_id)])
    store.suspend(NOW, _entry("subject", ALICE))


def test_file_revocation_view_reads_both_tables_at_one_moment(tmp_path: Path) -> None:
    path = tmp_path / "status" / "status.db"
    reader, writer = FileStatusStore(path), FileStatusStore(path)  # the service, the CLI
    try:
        _suspended_and_revocation_view(reader)
        real = reader._read_connection()
        interleaved = _Interleaved(real, _revoke_bob_reinstate_alice(writer), "suspensions")
        reader._read_connection = lambda: interleaved  # type: ignore[assignment,return-value]
        _gate_sees_a_moment_of_the_store(reader)
        assert interleaved._between is None  # the other process did run in between
        reader._read_connection = lambda: real  # type: ignore[method-assign]
        assert reader.in_force(NOW + 2).revocations[0].key == BOB  # the next read: after it
    finally:
        reader.close()
        writer.close()


class _InterleavedRedis(redis.Redis):
    """A client that runs `between` once, just before it asks for `asked` (a SUSPENDED set, the
    suspensions hash; alone, or in a pipeline: then before the whole pipeline)."""

    between: Between | None = None
    asked: tuple[str, str] = ("SMEMBERS", ":suspended")

    def _maybe_between(self, commands: list[tuple[Any, ...]]) -> None:
        verb, suffix = self.asked
        asks = any(c[0] == verb and str(c[1]).endswith(suffix) for c in commands)
        if asks and self.between is not None:
            self.between, between = None, self.between
            between()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self._maybe_between([args])
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        def run(*args: Any, **kwargs: Any) -> Any:
            self._maybe_between([command[0] for command in pipe.command_stack])
            return execute(*args, **kwargs)

        pipe.execute = run  # type: ignore[method-assign]
        return pipe


def test_redis_snapshot_reads_both_sets_at_one_moment() -> None:
    server = start_redis()
    client = _InterleavedRedis.from_url(server.url, socket_timeout=30.0)  # a hang guard
    reader = RedisStatusStore(client)
    writer = RedisStatusStore.from_url(server.url)
    try:
        list_id = _suspended_token(reader)
        client.between = _escalate(writer)
        _never_valid(reader, list_id)
        assert client.between is None  # the other process did run
    finally:
        reader.close()
        writer.close()
        server.stop()


def test_redis_revocation_view_reads_both_hashes_at_one_moment() -> None:
    server = start_redis()
    client = _InterleavedRedis.from_url(server.url, socket_timeout=30.0)  # a hang guard
    client.asked = ("HGETALL", ":suspensions")
    reader = RedisStatusStore(client)
    writer = RedisStatusStore.from_url(server.url)
    try:
        _suspended_and_revocation_view(reader)
        client.between = _revoke_bob_reinstate_alice(writer)
        _gate_sees_a_moment_of_the_store(reader)
        assert client.between is None  # the other process did run
    finally:
        reader.close()
        writer.close()
        server.stop()
