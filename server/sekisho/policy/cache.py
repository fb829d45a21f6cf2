"""Decision cache: an identical input reuses a decision for the `cache_ttl_seconds` the policy
declared (docs/architecture.md §5; 0 = never, the default).

Key: SHA-256 of a JSON encoding of the whole input document except `now` (keying.py: canonical
members; the subject's and actor's encoded once per verified token object), so two requests
share a decision only when subject (with every claim of its token), actor, caller and request are
identical as JSON. `now` is left out on purpose: the policy author's `cache_ttl_seconds` is the
declaration of how long the answer stays right, so a rule that reads `now` (consent expiry,
max_age step-up) must return a TTL no longer than it can tolerate. Denials are cached the same way,
only when the deny carries a TTL. Every policy or data reload flushes the cache, and a decision
computed before a reload is never stored after it (generation check). Bounded LRU; the engine's
own errors (unavailable, invalid decision) are never cached. Engine-agnostic.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sekisho.clock import Clock
from sekisho.lru import LruMap
from sekisho.models import Decision
from sekisho.policy.engine import PolicyRuntime
from sekisho.policy.keying import InputKeys


@dataclass(frozen=True, slots=True)
class _Entry:
    decision: Decision
    valid_until: float


class CachingPolicyEngine:
    """PolicyRuntime that remembers decisions the policy marked cacheable."""

    def __init__(self, engine: PolicyRuntime, clock: Clock, *, max_entries: int) -> None:
        self._engine = engine
        self._clock = clock
        self._max_entries = max_entries
        self._entries: LruMap[bytes, _Entry] = LruMap(max_entries)
        self._keys = InputKeys(max_entries)
        self._generation = 0
        self._flush_listeners: list[Callable[[], None]] = []
        self._reloading = asyncio.Lock()
        self.hits = 0
        self.misses = 0
        # An engine that activates a policy outside folder_changed (OPA in manage mode publishes
        # from its supervisor task) reports it, so the flush follows the activation.
        on_activated = getattr(engine, "on_policy_activated", None)
        # An engine that reads the input as JSON bytes (the embedded Wasm engine) takes them
        # from here on a miss: encoded once for the key and the policy (~8 µs per miss).
        self._decide_encoded: Callable[[bytes], Awaitable[Decision]] | None = getattr(
            engine, "decide_encoded", None
        )
        if callable(on_activated):
            on_activated(self.clear)

    def on_flush(self, listener: Callable[[], None]) -> None:
        """Call `listener` at every flush: every cache holding a grant or a token registers here,
        so a policy or data reload (an emergency deny-list entry) reaches all of them."""
        self._flush_listeners.append(listener)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def engine(self) -> PolicyRuntime:
        """The wrapped engine."""
        return self._engine

    @property
    def ready(self) -> bool:
        return self._engine.ready

    async def start(self) -> None:
        """Raises: PolicyLoadError."""
        await self._engine.start()
        self.clear()

    async def close(self) -> None:
        await self._engine.close()

    async def folder_changed(self) -> bool:
        """Reload the wrapped engine and flush (also when the reload failed: a flush is safe).
        One reload at a time: the folder watch and SIGHUP both call this, each reload reads in a
        thread, and unserialised the last to finish won: a reload that read the folder before a
        deny edit put the old grants back after the one that read it (red team session 16)."""
        async with self._reloading:
            self.clear()
            try:
                return await self._engine.folder_changed()
            finally:
                self.clear()

    async def changed_since_load(self) -> bool:
        """The wrapped engine's (PolicyRuntime); nothing is flushed."""
        return await self._engine.changed_since_load()

    def clear(self) -> None:
        """Drop every decision; decisions still being computed will not be stored."""
        self._generation += 1
        self._entries.clear()
        self._keys.clear()
        for listener in self._flush_listeners:
            listener()

    async def decide(self, document: dict[str, Any]) -> Decision:
        """Raises: TemporarilyUnavailableError when the engine cannot answer."""
        if self._max_entries <= 0:
            return await self._engine.decide(document)
        keyed = self._keys.of(document)
        digest = keyed.digest
        cached = self._fresh(digest)
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        generation = self._generation
        if self._decide_encoded is None:
            decision = await self._engine.decide(document)
        else:  # the embedded engine: hand it the JSON the key was computed from, not a 2nd one
            decision = await self._decide_encoded(keyed.encoded())
        if decision.cache_ttl_seconds > 0 and generation == self._generation:
            self._store(digest, decision)
        return decision

    def _fresh(self, digest: bytes) -> Decision | None:
        entry = self._entries.peek(digest)
        if entry is None:
            return None
        if self._clock.now() >= entry.valid_until:
            self._entries.pop(digest)
            return None
        self._entries.get(digest)  # a hit: now the most recently used
        return entry.decision

    def _store(self, digest: bytes, decision: Decision) -> None:
        valid_until = self._clock.now() + decision.cache_ttl_seconds
        self._entries.put(digest, _Entry(decision, valid_until))
