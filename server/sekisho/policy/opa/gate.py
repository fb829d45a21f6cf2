"""Decisions and policy publishes never overlap.

OPA has no transaction spanning several policy writes and a data patch, so while Sekisho
rewrites OPA's copy of the policy (and, if OPA rejects part of it, restores the last good one)
no decision may be taken: it could see new rules with old data, or a module OPA accepted before
rejecting its sibling. A publish waits for decisions in flight; decisions wait for the publish.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PublishGate:
    """Many readers (decisions) or one writer (a publish), writers first."""

    def __init__(self) -> None:
        self._writer = asyncio.Lock()
        self._open = asyncio.Event()
        self._open.set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._readers = 0

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[None]:
        """Hold while querying OPA for a decision."""
        while not self._open.is_set():
            await self._open.wait()
        self._readers += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._readers -= 1
            if self._readers == 0:
                self._idle.set()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[None]:
        """Hold while publishing: new decisions wait, decisions in flight finish first."""
        async with self._writer:
            self._open.clear()
            try:
                await self._idle.wait()
                yield
            finally:
                self._open.set()

    @property
    def publishing(self) -> bool:
        return not self._open.is_set()
