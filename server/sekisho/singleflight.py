"""Single-flight: concurrent callers asking for the same key share one run of the work.

Used wherever a burst of identical misses would otherwise repeat an expensive call (a JWKS fetch,
an exchange for the gateway, an ExchangeToken RPC in the client SDK). Waiters await the shared
task through `asyncio.shield`, so one waiter giving up (cancelled, timed out) never cancels the
work the others wait for. Standard library only, so the SDKs may use it.
"""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one running task per key; it leaves the map when it finishes."""

    __slots__ = ("_running",)

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    def __len__(self) -> int:
        return len(self._running)

    def running(self, key: K) -> bool:
        return key in self._running

    def start(self, key: K, work: Callable[[], Coroutine[Any, Any, V]]) -> "asyncio.Future[V]":
        """The task running for `key`, or a new one running `work()`; never awaited here."""
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return task

    async def run(self, key: K, work: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """Join the run for `key` (starting it if none); raises what the work raised."""
        return await asyncio.shield(self.start(key, work))

    def _forget(self, key: K, done: "asyncio.Future[V]") -> None:
        if self._running.get(key) is done:
            del self._running[key]
