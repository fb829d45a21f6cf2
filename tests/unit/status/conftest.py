"""Both StatusStore backends, for the contract tests: the SQLite file and a real redis-server."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sekisho.status.filestore import FileStatusStore
from sekisho.status.redisstore import RedisStatusStore
from sekisho.status.store import StatusStore

from tests.redis_server import start_redis


@pytest.fixture(params=["file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StatusStore]:
    if request.param == "file":
        file_store = FileStatusStore(tmp_path / "status" / "status.db")
        yield file_store
        file_store.close()
        return
    server = start_redis()
    redis_store = RedisStatusStore.from_url(server.url)
    try:
        yield redis_store
    finally:
        redis_store.close()
        server.stop()
