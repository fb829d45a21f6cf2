"""Leases taken at once by several processes (server.workers > 1, or replicas) never overlap:
the store's lock (SQLite's file lock; a Lua script in Redis) is the only coordination."""

import multiprocessing
from pathlib import Path

import pytest
from sekisho.status.filestore import FileStatusStore
from sekisho.status.redisstore import RedisStatusStore
from sekisho.status.store import StatusStore

from tests.redis_server import start_redis

PROCESSES = 4
LEASES_EACH = 40
NOW = 1_800_000_000


def _lease_many(where: str, out: "multiprocessing.Queue[list[tuple[int, int]]]") -> None:
    store: StatusStore = (
        RedisStatusStore.from_url(where)
        if where.startswith("redis")
        else FileStatusStore(Path(where))
    )
    taken = []
    for _ in range(LEASES_EACH):
        lease = store.lease(
            NOW, list_size=1000, lease_size=7, use_until=NOW + 60, valid_until=NOW + 400
        )
        taken += [(lease.list_id, idx) for idx in range(lease.start, lease.end)]
    out.put(taken)


def _run(where: str) -> list[tuple[int, int]]:
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[list[tuple[int, int]]] = context.Queue()
    workers = [context.Process(target=_lease_many, args=(where, out)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    results = [out.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
        assert worker.exitcode == 0
    return [entry for result in results for entry in result]


@pytest.mark.parametrize("backend", ["file", "redis"])
def test_concurrent_leases_are_disjoint(backend: str, tmp_path: Path) -> None:
    if backend == "file":
        taken = _run(str(tmp_path / "status.db"))
    else:
        server = start_redis()
        try:
            taken = _run(server.url)
        finally:
            server.stop()
    assert len(taken) == len(set(taken)), "an index was leased twice"
    assert len({list_id for list_id, _ in taken}) > 1  # 4 x 40 x 7 = 1120 > 1000: rolled over
