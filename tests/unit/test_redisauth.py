"""The redis extra is checked before use: without the package, each Redis-backed setting fails
with a ConfigError naming its key (one rule, redisauth.require_redis)."""

import sys
from collections.abc import Callable

import pytest
from sekisho.components import build_replay_cache
from sekisho.config import StatusListConfig
from sekisho.errors import ConfigError
from sekisho.status_stores import build_status_store

URL = "redis://127.0.0.1:6379/0"
BUILDERS: dict[str, Callable[[], object]] = {
    "token_endpoint.replay_cache_url": lambda: build_replay_cache(URL),
    "status_list.store": lambda: build_status_store(StatusListConfig(store="redis", redis_url=URL)),
}


@pytest.mark.parametrize(("key", "build"), BUILDERS.items(), ids=BUILDERS.keys())
def test_without_the_redis_package_the_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, key: str, build: Callable[[], object]
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # what an install without sekisho[redis] is
    with pytest.raises(
        ConfigError, match=rf"^config key '{key}': .*pip install 'sekisho\[redis\]'"
    ):
        build()
