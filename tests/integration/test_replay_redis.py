"""RedisReplayCache against a real redis-server: one use per jti across replicas, expiry, and
fail-closed when Redis is unreachable."""

import time

import pytest
import redis.asyncio
from sekisho.verify import (
    RedisReplayCache,
    ReplayCacheUnavailableError,
    ReplayedTokenError,
    VerifierUnavailableError,
)

from tests.redis_server import RedisServer

pytestmark = pytest.mark.integration


def _client(server: RedisServer) -> "redis.asyncio.Redis":
    # Hang guards, not 1 s: a stalled redis-server (loaded host) would make a command that must
    # succeed fail as ReplayCacheUnavailableError. A stopped server refuses the connection at
    # once, so the fail-closed tests do not wait for them.
    return redis.asyncio.Redis.from_url(server.url, socket_timeout=30, socket_connect_timeout=30)


async def test_second_use_of_a_jti_is_refused_across_replicas(redis_server: RedisServer) -> None:
    now = time.time()
    replica_a, replica_b = _client(redis_server), _client(redis_server)
    try:
        first = await RedisReplayCache(replica_a).first_use("iss", "jti-1", int(now) + 60, now)
        again = await RedisReplayCache(replica_b).first_use("iss", "jti-1", int(now) + 60, now)
        other_issuer = await RedisReplayCache(replica_b).first_use(
            "iss2", "jti-1", int(now) + 60, now
        )
    finally:
        await replica_a.aclose()
        await replica_b.aclose()
    assert (first, again, other_issuer) == (True, False, True)


async def test_entry_lives_until_the_token_expires(redis_server: RedisServer) -> None:
    now = time.time()
    client = _client(redis_server)
    try:
        await RedisReplayCache(client, prefix="p:").first_use("iss", "jti-2", int(now) + 60, now)
        keys = await client.keys("p:*")
        ttl = await client.ttl(keys[0])
    finally:
        await client.aclose()
    assert len(keys) == 1
    assert 55 <= ttl <= 62
    assert b"jti-2" not in keys[0]  # hashed: attacker-chosen jti never becomes a raw key


async def test_unreachable_redis_refuses(redis_server: RedisServer) -> None:
    client = _client(redis_server)
    cache = RedisReplayCache(client)
    now = time.time()
    assert await cache.first_use("iss", "jti-3", int(now) + 60, now)
    redis_server.stop()
    try:
        with pytest.raises(ReplayCacheUnavailableError):
            await cache.first_use("iss", "jti-4", int(now) + 60, now)
    finally:
        await client.aclose()


async def test_verifier_on_redis_refuses_replays_and_fails_closed(
    redis_server: RedisServer,
) -> None:
    from tests.unit.verify.test_tokens import mint, verifier

    client = _client(redis_server)
    try:
        replica_a = verifier(replay_cache=RedisReplayCache(client), clock=time.time)
        replica_b = verifier(replay_cache=RedisReplayCache(client), clock=time.time)
        now = int(time.time())
        token = mint(iat=now, exp=now + 300)
        await replica_a.verify(token, client_id="agent-at-crm")
        with pytest.raises(ReplayedTokenError):
            await replica_b.verify(
                token, client_id="agent-at-crm"
            )  # another replica sees the first redemption
        redis_server.stop()
        with pytest.raises(VerifierUnavailableError):
            await replica_a.verify(mint(iat=now, exp=now + 300), client_id="agent-at-crm")
    finally:
        await client.aclose()
