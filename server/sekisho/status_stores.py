"""Builds the configured status store from [status_list] (composition root for token status,
shared by `sekisho serve` and `sekisho revoke`, which must not need the HTTP layer).

- file: one SQLite file (one host)
- redis: a Redis server shared by replicas
"""

from sekisho.config import StatusListConfig
from sekisho.status.store import StatusStore


def build_status_store(config: StatusListConfig) -> StatusStore:
    """The configured store: the SQLite file (one host) or Redis (replicas).

    Raises: ConfigError (store = redis without the redis package, or its password variable empty).
    """
    if config.store == "file":
        from sekisho.status.filestore import FileStatusStore

        return FileStatusStore(config.path)
    from sekisho.redisauth import redis_auth, require_redis

    require_redis("status_list.store")
    from sekisho.status.redisstore import RedisStatusStore

    auth = redis_auth(config.redis_password_env, config.redis_ca_file)
    return RedisStatusStore.from_url(config.redis_url, **auth)
