"""Time as a dependency: everything that reads the time takes a Clock."""

import time
from typing import Protocol


class Clock(Protocol):
    """Source of wall-clock time in seconds since the epoch."""

    def now(self) -> float: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> float:
        return time.time()
