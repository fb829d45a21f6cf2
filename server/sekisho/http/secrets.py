"""argon2id client-secret checks off the event loop (issue 14 item 2).

A check runs in a small thread pool (argon2-cffi releases the GIL while hashing), so a flood of
logins costs those threads' CPU, never the loop's: gRPC and HTTP keep answering. A semaphore of
the pool's size admits checks, so waiting happens on the loop (cheap) and is bounded by the
attempt gate (attempts.py) in front of it.

Unknown client ids cost no hash: the decoy holds a pool slot for as long as a real check takes
(a moving average of measured checks, seeded by one real check), without using CPU. A caller
sees the same answer after the same time and the same queueing either way, so response timing
does not reveal which ids exist; what differs is only the server's CPU use, which a remote
caller cannot observe apart from everyone else's load (docs/security.md).

The seed (one argon2id hash and check, 0.1-0.5 s of CPU) runs in the pool when the first check
or decoy arrives, not at start-up, where it would compete with the service starting (`make run`
on two cores); every check and decoy waits for it, so none is answered before the typical
duration is known, and the first ones all wait the same.
"""

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_DECOY_SECRET = "sekisho-decoy-secret"


class SecretChecker:
    """Verifies secrets against argon2id hashes in `threads` threads; `decoy` mimics one."""

    def __init__(
        self,
        threads: int = 1,
        *,
        timer: Callable[[], float] = time.perf_counter,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="sekisho-argon2")
        self._slots = asyncio.Semaphore(threads)
        self._hasher = hasher or PasswordHasher()
        self._timer = timer
        self._typical = 0.0
        self._seeded: Future[None] | None = None

    @property
    def typical_seconds(self) -> float:
        """How long a check takes lately (the decoy's duration); seeds it first if needed."""
        self._seeding().result()
        return self._typical

    def _seeding(self) -> "Future[None]":
        if self._seeded is None:
            self._seeded = self._pool.submit(self._seed)
        return self._seeded

    def _seed(self) -> None:
        decoy_hash = self._hasher.hash(_DECOY_SECRET)
        started = self._timer()
        self._check(decoy_hash, _DECOY_SECRET)
        self._typical = self._timer() - started

    async def _wait_for_seed(self) -> None:
        seeded = self._seeding()
        if not seeded.done():
            await asyncio.wrap_future(seeded)

    async def verify(self, stored_hash: str, secret: str) -> bool:
        """Whether `secret` matches `stored_hash` (a malformed hash never matches)."""
        await self._wait_for_seed()
        async with self._slots:
            started = self._timer()
            loop = asyncio.get_running_loop()
            matched = await loop.run_in_executor(self._pool, self._check, stored_hash, secret)
            self._typical = 0.8 * self._typical + 0.2 * (self._timer() - started)
            return matched

    async def decoy(self) -> None:
        """Take as long as a check, holding a slot like one, without hashing."""
        await self._wait_for_seed()
        async with self._slots:
            await asyncio.sleep(self._typical)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _check(self, stored_hash: str, secret: str) -> bool:
        try:
            return self._hasher.verify(stored_hash, secret)
        except (VerificationError, InvalidHashError):
            return False
