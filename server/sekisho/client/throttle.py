"""Client-side adaptive throttling (Google SRE book, "Handling Overload": client-side throttling).

Each client remembers, over the last `window_seconds`, how many requests it attempted and how
many the service accepted (answered with anything but an overload refusal). When the service is
refusing, the client starts rejecting new requests locally with probability

    max(0, (requests - K * accepts) / (requests + 1))

so a fleet of agents stops sending calls that would only be refused, while K > 1 keeps enough
requests flowing to notice recovery. Locally rejected requests count as requests, as in the book.
"""

import random
from collections import deque
from collections.abc import Callable


class AdaptiveThrottle:
    """Counts requests and accepts in one-second buckets over a sliding window."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        k: float = 2.0,
        window_seconds: int = 120,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._clock = clock
        self._k = k
        self._window = window_seconds
        self._rand = rand
        self._buckets: deque[list[int]] = deque()  # [second, requests, accepts]
        self._requests = 0
        self._accepts = 0

    def rejection_probability(self) -> float:
        """The chance a new request is rejected locally now."""
        self._expire()
        return max(0.0, (self._requests - self._k * self._accepts) / (self._requests + 1))

    def allow(self) -> bool:
        """Whether to send a new request. A local rejection counts as a request at once; a sent
        one counts when its answer comes (`accepted` or `refused`), so calls still in flight do
        not look like refusals: a cold client's first burst goes out whole."""
        if self._rand() < self.rejection_probability():
            self._count(requests=1, accepts=0)
            return False
        return True

    def accepted(self) -> None:
        """The service answered a sent request (anything but an overload refusal)."""
        self._count(requests=1, accepts=1)

    def refused(self) -> None:
        """The service refused a sent request for overload, or did not answer in time."""
        self._count(requests=1, accepts=0)

    def _count(self, *, requests: int, accepts: int) -> None:
        second = int(self._clock())
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        self._buckets[-1][1] += requests
        self._buckets[-1][2] += accepts
        self._requests += requests
        self._accepts += accepts
        self._expire()

    def _expire(self) -> None:
        oldest = int(self._clock()) - self._window
        while self._buckets and self._buckets[0][0] <= oldest:
            _, requests, accepts = self._buckets.popleft()
            self._requests -= requests
            self._accepts -= accepts
