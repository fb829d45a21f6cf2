"""Builds the configured status store from [status_list] (composition root for token status,
shared by `sekisho serve` and `sekisho revoke`, which must not need the HTTP layer).

- file: one SQLite file (one host)
- redis: a Redis server shared by replicas
"""

from sekisho.config import StatusListConfig
from sekisho.errors import ConfigError
from sekisho.status.store import StatusStore


def build_status_store(config: StatusListConfig) -> StatusStore:
    """The configured store: the SQLite file (one host) or Redis (replicas).

    Raises: ConfigError (store = redis without the redis package, or its password variable empty).
    """
    if config.store == "file":
        from sekisho.status.filestore import FileStatusStore

        return FileStatusStore(config.path)
    try:
        from sekisho.status.redisstore import RedisStatusStore
    except ImportError as exc:
        raise ConfigError(
            "config key 'status_list.store': the redis package is not installed "
            "(pip install 'sekisho[redis]')"
        ) from exc
    from sekisho.redisauth import redis_auth

    auth = redis_auth(config.redis_password_env, config.redis_ca_file)
    return RedisStatusStore.from_url(config.redis_url, **auth)
