"""The multi-replica StatusStore: Redis, each operation one Lua script (atomic on the server).

Keys under `prefix`: `lists:current`, `lists:seq`, `list:<id>` (size, next, retire_after),
`list:<id>:invalid` (a set of indexes), `by:<kind>:<value>` (sorted sets of `<list>:<idx>` by exp;
`jti:<jti>` strings for token revocations) and the `revocations` / `revocation_until` hashes.
Every per-token key expires with the token; a list's keys expire once no token in it can be valid.
"""

import json
from collections.abc import Sequence
from typing import Any

import redis

from sekisho.status.models import IssuedToken, Lease, ListSnapshot, Revocation, RevocationKind
from sekisho.status.store import StatusStoreError

_MARK = """
local function mark(P, list, idx)
  local key = P .. 'list:' .. list .. ':invalid'
  redis.call('SADD', key, idx)
  local retire = tonumber(redis.call('HGET', P .. 'list:' .. list, 'retire_after') or '0')
  if retire > 0 then redis.call('EXPIREAT', key, retire + 60) end
end
local function extend(key, at)
  local current = redis.call('EXPIRETIME', key)
  if current < at then redis.call('EXPIREAT', key, at) end
end
"""

_LEASE = """
local P, size, lease, valid_until = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local id = redis.call('GET', P .. 'lists:current')
local start, cap
if id then
  start = tonumber(redis.call('HGET', P .. 'list:' .. id, 'next'))
  cap = tonumber(redis.call('HGET', P .. 'list:' .. id, 'size'))
end
if (not id) or (not start) or start >= cap then
  id = tostring(redis.call('INCR', P .. 'lists:seq'))
  redis.call('HSET', P .. 'list:' .. id, 'size', size, 'next', 0, 'retire_after', 0)
  redis.call('SET', P .. 'lists:current', id)
  start, cap = 0, size
end
local stop = math.min(cap, start + lease)
local key = P .. 'list:' .. id
redis.call('HSET', key, 'next', stop)
local retire = tonumber(redis.call('HGET', key, 'retire_after'))
if valid_until > retire then
  redis.call('HSET', key, 'retire_after', valid_until)
  redis.call('EXPIREAT', key, valid_until + 60)
  redis.call('ZADD', P .. 'lists', valid_until, id)
end
return {tonumber(id), start, stop}
"""

_RECORD = (
    _MARK
    + """
local P, now = ARGV[1], tonumber(ARGV[2])
local kinds = {'subject', 'caller', 'audience'}
local marked = 0
for i = 3, #ARGV, 7 do
  local jti, list, idx, exp = ARGV[i], ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  local member = list .. ':' .. idx
  redis.call('SET', P .. 'jti:' .. jti, member .. ':' .. exp, 'EXAT', exp + 1)
  local covered = false
  local names = {token = jti, subject = ARGV[i + 1], caller = ARGV[i + 2], audience = ARGV[i + 3]}
  for _, kind in ipairs(kinds) do
    local key = P .. 'by:' .. kind .. ':' .. names[kind]
    redis.call('ZADD', key, exp, member)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. now)
    extend(key, exp + 1)
  end
  for kind, value in pairs(names) do
    local untl = redis.call('HGET', P .. 'revocation_until', kind .. '\\31' .. value)
    if untl and (tonumber(untl) == 0 or tonumber(untl) > now) then covered = true end
  end
  if covered then mark(P, list, idx); marked = marked + 1 end
end
return marked
"""
)

_REVOKE = (
    _MARK
    + """
local P, now, kind, value = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local untl = tonumber(ARGV[8])
local members = {}
if kind == 'token' then
  local found = redis.call('GET', P .. 'jti:' .. value)
  if found then
    local list, idx, exp = string.match(found, '^(%d+):(%d+):(%d+)$')
    if tonumber(exp) >= now then
      table.insert(members, list .. ':' .. idx)
      untl = tonumber(exp)
    end
  end
else
  members = redis.call('ZRANGEBYSCORE', P .. 'by:' .. kind .. ':' .. value, now, '+inf')
end
local field = kind .. '\\31' .. value
redis.call('HSET', P .. 'revocation_until', field, untl)
redis.call('HSET', P .. 'revocations', field, cjson.encode({
  kind = kind, key = value, reason = ARGV[5], operator = ARGV[6],
  created_at = tonumber(ARGV[7]), ['until'] = untl}))
for _, member in ipairs(members) do
  local list, idx = string.match(member, '^(%d+):(%d+)$')
  mark(P, list, idx)
end
return #members
"""
)

# Full lists whose last lease's tokens have all expired (their keys also expire by themselves).
_PRUNE = """
local P, now = ARGV[1], tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'lists', '-inf', '(' .. now)) do
  local key = P .. 'list:' .. id
  local fields = redis.call('HMGET', key, 'next', 'size')
  if (not fields[1]) or tonumber(fields[1]) >= tonumber(fields[2]) then
    redis.call('DEL', key, key .. ':invalid')
    redis.call('ZREM', P .. 'lists', id)
  end
end
return 0
"""


class RedisStatusStore:
    """StatusStore in Redis, shared by every replica."""

    def __init__(self, client: "redis.Redis", *, prefix: str = "sekisho:status:") -> None:
        self._client = client
        self._prefix = prefix
        self._lease = client.register_script(_LEASE)
        self._record = client.register_script(_RECORD)
        self._revoke = client.register_script(_REVOKE)
        self._prune = client.register_script(_PRUNE)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "RedisStatusStore":
        """`options`: from_url() keywords such as `password` (sekisho.redisauth.redis_auth)."""
        return cls(
            redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, **options)
        )

    def lease(
        self, now: int, *, list_size: int, lease_size: int, use_until: int, valid_until: int
    ) -> Lease:
        args = [self._prefix, list_size, lease_size, valid_until]
        list_id, start, end = self._call(self._lease, args)
        return Lease(list_id=int(list_id), start=int(start), end=int(end), use_until=use_until)

    def record(self, now: int, tokens: Sequence[IssuedToken]) -> int:
        if not tokens:
            return 0
        args: list[Any] = [self._prefix, now]
        for t in tokens:
            args += [t.jti, t.subject, t.caller, t.audience, t.list_id, t.idx, t.expires_at]
        return int(self._call(self._record, args))

    def revoke(self, now: int, revocation: Revocation) -> int:
        r = revocation
        args = [self._prefix, now, r.kind, r.key, r.reason, r.operator, r.created_at, r.until]
        return int(self._call(self._revoke, args))

    def lift(self, kind: RevocationKind, key: str) -> bool:
        field = f"{kind}\x1f{key}"
        try:
            pipe = self._client.pipeline()
            pipe.hdel(self._prefix + "revocations", field)
            pipe.hdel(self._prefix + "revocation_until", field)
            removed, _ = pipe.execute()
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        return bool(removed)

    def revocations(self, now: int) -> list[Revocation]:
        try:
            raw = self._client.hgetall(self._prefix + "revocations")
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        found = [_revocation(value) for value in raw.values()]
        return sorted((r for r in found if r.active(now)), key=lambda r: r.created_at)

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        key = f"{self._prefix}list:{list_id}"
        try:
            size = self._client.hget(key, "size")
            members = self._client.smembers(key + ":invalid") if size is not None else set()
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        if size is None:
            return None
        return ListSnapshot(list_id, _int(size), frozenset(_int(m) for m in members))

    def live_lists(self, now: int) -> list[int]:
        try:
            ids = self._client.zrangebyscore(self._prefix + "lists", now, "+inf")
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        return sorted(_int(i) for i in ids if isinstance(i, bytes | str))

    def prune(self, now: int) -> None:
        self._call(self._prune, [self._prefix, now])
        # Lists and records expire by themselves; only elapsed token revocations remain.
        for revocation in self._all_revocations():
            if not revocation.active(now):
                self.lift(revocation.kind, revocation.key)

    def close(self) -> None:
        self._client.close()

    def _all_revocations(self) -> list[Revocation]:
        try:
            raw = self._client.hgetall(self._prefix + "revocations")
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        return [_revocation(value) for value in raw.values()]

    def _call(self, script: Any, args: Sequence[Any]) -> Any:
        try:
            return script(args=list(args))
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc


def _int(raw: bytes | str) -> int:
    return int(raw.decode("ascii") if isinstance(raw, bytes) else raw)


def _revocation(raw: bytes | str) -> Revocation:
    value = json.loads(raw)
    return Revocation(
        kind=value["kind"],
        key=value["key"],
        reason=value["reason"],
        operator=value["operator"],
        created_at=int(value["created_at"]),
        until=int(value["until"]),
    )
