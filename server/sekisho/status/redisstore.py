"""The multi-replica StatusStore: Redis, each operation one Lua script (atomic on the server).

Keys under `prefix`: `lists:current`, `lists:seq`, `list:<id>` (size, next, retire_after),
`list:<id>:invalid` and `list:<id>:suspended` (sets of indexes), `by:<kind>:<value>` (sorted sets
of `<list>:<idx>` by exp: every token a revocation of `kind` = `value` covers, also by its other
names, IssuedToken.also_named: its actor under `by:subject:`, the mTLS caller of an exchange with
an actor token under `by:caller:`, each granted resource under `by:audience:`, each earlier actor
in the inbound tokens' `act` chains under both `by:caller:` and `by:subject:`; `jti:<jti>` strings
for token revocations), the `revocations` /
`revocation_until` hashes and the `suspensions` / `suspension_until` hashes, and `in_force_seq`
(the counter that orders the entries of one second).
Every per-token key expires with the token; a list's keys expire once no token in it can be valid.
"""

import json
from collections.abc import Sequence
from typing import Any

import redis

from sekisho.status.models import (
    InForce,
    IssuedToken,
    Lease,
    ListSnapshot,
    Revocation,
    RevocationKind,
)
from sekisho.status.store import StatusStoreError

_MARK = """
-- Marks the entry; returns 1 when its status changed (the StatusStore count): newly INVALID
-- (VALID or SUSPENDED before), or newly SUSPENDED and not INVALID (VALID before), else 0.
local function mark(P, list, idx, marks)
  local key = P .. 'list:' .. list .. ':' .. marks
  local added = redis.call('SADD', key, idx)
  local retire = tonumber(redis.call('HGET', P .. 'list:' .. list, 'retire_after') or '0')
  if retire > 0 then redis.call('EXPIREAT', key, retire + 60) end
  if added == 0 then return 0 end
  if marks == 'invalid' then return 1 end
  return 1 - redis.call('SISMEMBER', P .. 'list:' .. list .. ':invalid', idx)
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
-- Per token: jti, subject, caller, audience, list, idx, exp, n, then n (kind, value) pairs of
-- its other names (IssuedToken.also_named).
local P, now = ARGV[1], tonumber(ARGV[2])
local marked = 0
local i = 3
while i <= #ARGV do
  local jti, list, idx, exp = ARGV[i], ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])
  local member = list .. ':' .. idx
  redis.call('SET', P .. 'jti:' .. jti, member .. ':' .. exp, 'EXAT', exp + 1)
  local names = {{'subject', ARGV[i + 1]}, {'caller', ARGV[i + 2]}, {'audience', ARGV[i + 3]}}
  local n = tonumber(ARGV[i + 7])
  for j = 1, n do table.insert(names, {ARGV[i + 6 + 2 * j], ARGV[i + 7 + 2 * j]}) end
  i = i + 8 + 2 * n
  for _, name in ipairs(names) do
    local key = P .. 'by:' .. name[1] .. ':' .. name[2]
    redis.call('ZADD', key, exp, member)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. now)
    extend(key, exp + 1)
  end
  table.insert(names, {'token', jti})
  -- Revocations first (in order: pairs() has none): a token also suspended changes once.
  for _, pair in ipairs({{'revocation', 'invalid'}, {'suspension', 'suspended'}}) do
    local entries, marks = pair[1], pair[2]
    local covered = false
    for _, name in ipairs(names) do
      local untl = redis.call('HGET', P .. entries .. '_until', name[1] .. '\\31' .. name[2])
      if untl and (tonumber(untl) == 0 or tonumber(untl) > now) then covered = true end
    end
    if covered then marked = marked + mark(P, list, idx, marks) end
  end
end
return marked
"""
)

# The live tokens `kind` = `value` names, as `<list>:<idx>` members, and the latest exp of a token
# named by jti (0 otherwise).
_MEMBERS = """
local function members_of(P, now, kind, value)
  if kind ~= 'token' then
    return redis.call('ZRANGEBYSCORE', P .. 'by:' .. kind .. ':' .. value, now, '+inf'), 0
  end
  local found = redis.call('GET', P .. 'jti:' .. value)
  if found then
    local list, idx, exp = string.match(found, '^(%d+):(%d+):(%d+)$')
    if tonumber(exp) >= now then return {list .. ':' .. idx}, tonumber(exp) end
  end
  return {}, 0
end
"""

# ARGV[9]: 'revocation' (marks INVALID) or 'suspension' (marks SUSPENDED).
_PUT_IN_FORCE = (
    _MARK
    + _MEMBERS
    + """
local P, now, kind, value = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local untl, entries = tonumber(ARGV[8]), ARGV[9]
local marks = ({revocation = 'invalid', suspension = 'suspended'})[entries]
local members, exp = members_of(P, now, kind, value)
if exp > 0 then untl = exp end  -- a minted token's entry ends when the token does
local field = kind .. '\\31' .. value
-- One of this kind and key in force already stands as it is (StatusStore.revoke).
local standing = tonumber(redis.call('HGET', P .. entries .. '_until', field))
if not (standing and (standing == 0 or standing > now)) then
  redis.call('HSET', P .. entries .. '_until', field, untl)
  -- seq: the order of puts within one created_at second (revoke list, _in_force)
  local seq = redis.call('INCR', P .. 'in_force_seq')
  redis.call('HSET', P .. entries .. 's', field, cjson.encode({
    kind = kind, key = value, reason = ARGV[5], operator = ARGV[6],
    created_at = tonumber(ARGV[7]), ['until'] = untl, seq = seq}))
end
local changed = 0
for _, member in ipairs(members) do
  local list, idx = string.match(member, '^(%d+):(%d+)$')
  changed = changed + mark(P, list, idx, marks)
end
return changed
"""
)

# -1 when no such suspension is in force, else how many freed tokens changed from SUSPENDED to
# VALID.
_REINSTATE = (
    _MEMBERS
    + """
local P, now, kind, value = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local field = kind .. '\\31' .. value
if redis.call('HDEL', P .. 'suspensions', field) == 0 then return -1 end
redis.call('HDEL', P .. 'suspension_until', field)
local still = {}
local others = redis.call('HGETALL', P .. 'suspension_until')
for i = 1, #others, 2 do
  local untl = tonumber(others[i + 1])
  if untl == 0 or untl > now then
    local k, v = string.match(others[i], '^([^\\31]*)\\31(.*)$')
    for _, member in ipairs((members_of(P, now, k, v))) do still[member] = true end
  end
end
local freed = 0
for _, member in ipairs((members_of(P, now, kind, value))) do
  if not still[member] then
    local list, idx = string.match(member, '^(%d+):(%d+)$')
    local key = P .. 'list:' .. list
    local unmarked = redis.call('SREM', key .. ':suspended', idx)
    if unmarked == 1 and redis.call('SISMEMBER', key .. ':invalid', idx) == 0 then
      freed = freed + 1  -- SUSPENDED before, VALID now
    end
  end
end
return freed
"""
)

# Full lists whose last lease's tokens have all expired (their keys also expire by themselves).
_PRUNE = """
local P, now = ARGV[1], tonumber(ARGV[2])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'lists', '-inf', '(' .. now)) do
  local key = P .. 'list:' .. id
  local fields = redis.call('HMGET', key, 'next', 'size')
  if (not fields[1]) or tonumber(fields[1]) >= tonumber(fields[2]) then
    redis.call('DEL', key, key .. ':invalid', key .. ':suspended')
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
        self._put_in_force = client.register_script(_PUT_IN_FORCE)
        self._reinstate = client.register_script(_REINSTATE)
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
            also = t.also_named()
            args.append(len(also))
            args += [part for name in also for part in name]
        return int(self._call(self._record, args))

    def revoke(self, now: int, revocation: Revocation) -> int:
        return self._put(now, revocation, "revocation")

    def lift(self, kind: RevocationKind, key: str) -> bool:
        return self._remove("revocation", kind, key)

    def revocations(self, now: int) -> list[Revocation]:
        return _in_force(self._raw("revocation"), now)

    def suspend(self, now: int, suspension: Revocation) -> int:
        return self._put(now, suspension, "suspension")

    def reinstate(self, now: int, kind: RevocationKind, key: str) -> int | None:
        freed = int(self._call(self._reinstate, [self._prefix, now, kind, key]))
        return None if freed < 0 else freed

    def suspensions(self, now: int) -> list[Revocation]:
        return _in_force(self._raw("suspension"), now)

    def in_force(self, now: int) -> InForce:
        try:  # one MULTI: both hashes as of one moment
            pipe = self._client.pipeline(transaction=True)
            pipe.hgetall(f"{self._prefix}revocations")
            pipe.hgetall(f"{self._prefix}suspensions")
            revoked, suspended = pipe.execute()
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        return InForce(
            _in_force(list(revoked.values()), now), _in_force(list(suspended.values()), now)
        )

    def snapshot(self, list_id: int) -> ListSnapshot | None:
        key = f"{self._prefix}list:{list_id}"
        try:
            # One MULTI: the INVALID and SUSPENDED sets as of one moment. Read apart, a revoke
            # then a reinstate between the two reads served a SUSPENDED-then-INVALID token VALID.
            pipe = self._client.pipeline(transaction=True)
            pipe.hget(key, "size")
            pipe.smembers(key + ":invalid")
            pipe.smembers(key + ":suspended")
            size, invalid, suspended = pipe.execute()
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        if size is None:
            return None
        return ListSnapshot(
            list_id,
            _int(size),
            frozenset(_int(m) for m in invalid),
            frozenset(_int(m) for m in suspended),
        )

    def live_lists(self, now: int) -> list[int]:
        try:
            ids = self._client.zrangebyscore(self._prefix + "lists", now, "+inf")
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        return sorted(_int(i) for i in ids if isinstance(i, bytes | str))

    def prune(self, now: int) -> None:
        self._call(self._prune, [self._prefix, now])
        # Lists and records expire by themselves; only elapsed token revocations remain.
        for table in ("revocation", "suspension"):
            for entry in map(_revocation, self._raw(table)):
                if not entry.active(now):
                    self._remove(table, entry.kind, entry.key)

    def close(self) -> None:
        self._client.close()

    def _put(self, now: int, entry: Revocation, table: str) -> int:
        """Put a revocation or suspension (`table`) in force, marking its live tokens."""
        r = entry
        args = [self._prefix, now, r.kind, r.key, r.reason, r.operator, r.created_at, r.until]
        return int(self._call(self._put_in_force, [*args, table]))

    def _remove(self, table: str, kind: RevocationKind, key: str) -> bool:
        field = f"{kind}\x1f{key}"
        try:
            pipe = self._client.pipeline()
            pipe.hdel(f"{self._prefix}{table}s", field)
            pipe.hdel(f"{self._prefix}{table}_until", field)
            removed, _ = pipe.execute()
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        return bool(removed)

    def _raw(self, table: str) -> list[bytes | str]:
        """The JSON entries of `revocations` or `suspensions`, in the hash's (no) order."""
        try:
            raw = self._client.hgetall(f"{self._prefix}{table}s")
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc
        return list(raw.values())

    def _call(self, script: Any, args: Sequence[Any]) -> Any:
        try:
            return script(args=list(args))
        except redis.RedisError as exc:
            raise StatusStoreError(f"status store (redis): {exc}") from exc


def _int(raw: bytes | str) -> int:
    return int(raw.decode("ascii") if isinstance(raw, bytes) else raw)


def _in_force(raws: list[bytes | str], now: int) -> list[Revocation]:
    """The entries in force at `now`, in the order they were put in force: by `created_at` (to
    the second), then by `seq`. A hash's own order is none (HGETALL of a hash of long values:
    its table's order), so two revocations of one second were listed either way round. An
    entry written before `seq` existed sorts first within its second."""
    values = sorted(map(json.loads, raws), key=lambda v: (int(v["created_at"]), v.get("seq", 0)))
    return [r for r in map(_revocation_of, values) if r.active(now)]


def _revocation(raw: bytes | str) -> Revocation:
    return _revocation_of(json.loads(raw))


def _revocation_of(value: dict[str, Any]) -> Revocation:
    return Revocation(
        kind=value["kind"],
        key=value["key"],
        reason=value["reason"],
        operator=value["operator"],
        created_at=int(value["created_at"]),
        until=int(value["until"]),
    )
