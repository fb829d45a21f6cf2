"""Time as a dependency: everything that reads the time takes a Clock. And the one way a time is
written for people (audit logs, CLI output)."""

import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """Source of wall-clock time in seconds since the epoch."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()


class CallableClock:
    """A Clock over a function of no arguments: the SDKs (sekisho.verify) take `clock=time.time`
    and the like, and hand it to the shared helpers that read a Clock (JwksCache, LogThrottle)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now


def utc_timestamp(epoch: float) -> str:
    """`epoch` as ISO 8601 UTC to the second, `2026-12-03T09:20:31Z`: the `time` of both audit
    logs (keys and revocations, which operators read side by side) and the times the CLI prints."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
