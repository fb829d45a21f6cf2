"""sekisho.client's adaptive throttle (throttle.py) before and after session 15, on a model:
one or many clients on a simulated clock against a service of fixed capacity. Deterministic
(seeded), no server, no wall clock: it answers questions about the rule, not about grpc.

- recovery: one client at D calls a second (each answered after 5 ms) whose calls are all
  refused for the first S seconds (the service unreachable or stalled at start), then accepted
  up to a capacity of 1,000 a second; seconds after the recovery until 90 % of its calls are
  served in a second, and the share served in the first minute after it;
- fleet: N clients, each at D calls a second (Poisson), against a token bucket of C a second;
  calls sent per call accepted, and sent per second, once settled (the SRE rule aims at K = 2).

    .venv/bin/python bench/throttle_recovery.py
"""

import heapq
import random
from collections import deque
from collections.abc import Callable
from typing import Protocol

from sekisho.client.throttle import AdaptiveThrottle

LATENCY = 0.005
CAPACITY = 1000.0


class Throttle(Protocol):
    def allow(self) -> bool: ...
    def accepted(self) -> None: ...
    def refused(self) -> None: ...


class Session14Throttle:
    """The rule as it was: 120 s sliding window of 1 s buckets, no probes, no recovery rule."""

    def __init__(self, clock: Callable[[], float], rand: Callable[[], float]) -> None:
        self._clock, self._rand = clock, rand
        self._buckets: deque[list[int]] = deque()
        self._requests = self._accepts = 0

    def allow(self) -> bool:
        self._expire()
        p = max(0.0, (self._requests - 2.0 * self._accepts) / (self._requests + 1))
        if self._rand() < p:
            self._count(1, 0)
            return False
        return True

    def accepted(self) -> None:
        self._count(1, 1)

    def refused(self) -> None:
        self._count(1, 0)

    def _count(self, requests: int, accepts: int) -> None:
        second = int(self._clock())
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        self._buckets[-1][1] += requests
        self._buckets[-1][2] += accepts
        self._requests += requests
        self._accepts += accepts
        self._expire()

    def _expire(self) -> None:
        while self._buckets and self._buckets[0][0] <= int(self._clock()) - 120:
            _, requests, accepts = self._buckets.popleft()
            self._requests -= requests
            self._accepts -= accepts


Make = Callable[[Callable[[], float], Callable[[], float]], Throttle]
VARIANTS: dict[str, Make] = {
    "session 14 (120 s window)": Session14Throttle,
    "session 15 (5 s decay; probes, recovery in a deep hole)": lambda clock, rand: AdaptiveThrottle(
        clock, rand=rand
    ),
}


class Bucket:
    """The service: a token bucket of `rate` a second (burst of 5)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.tokens, self.at = rate, 0.0, 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(5.0, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def recovery(make: Make, demand: float, stall: float, after: float = 60.0) -> tuple[int, float]:
    """(seconds after the recovery until 90 % served in a second (-1: not within `after`), the
    share of calls served in the first `after` seconds)."""
    now = [0.0]
    throttle = make(lambda: now[0], random.Random(1).random)  # noqa: S311 (a model, not crypto)
    service, answers = Bucket(CAPACITY), []
    served = [0] * int(after)
    for n in range(int((stall + after) * demand)):
        t = n / demand
        while answers and answers[0][0] <= t:
            now[0], ok = heapq.heappop(answers)
            throttle.accepted() if ok else throttle.refused()
        now[0] = t
        if throttle.allow():
            ok = t >= stall and service.take(t)
            heapq.heappush(answers, (t + LATENCY, ok))
            if ok:
                served[int(t - stall)] += 1
    want = 0.9 * min(demand, CAPACITY)
    first = next((second for second, count in enumerate(served) if count >= want), -1)
    return first, sum(served) / (min(demand, CAPACITY) * after)


def fleet(make: Make, clients: int, demand: float, capacity: float) -> tuple[float, float]:
    """(calls sent per call accepted, calls sent a second) over seconds 15-40."""
    rng = random.Random(5)  # noqa: S311 (a model, not crypto)
    now = [0.0]
    throttles = [make(lambda: now[0], rng.random) for _ in range(clients)]
    arrivals = [(rng.random() / demand, i) for i in range(clients)]
    heapq.heapify(arrivals)
    service, answers = Bucket(capacity), []
    sent = accepted = 0
    while arrivals[0][0] < 40.0:
        t, i = heapq.heappop(arrivals)
        while answers and answers[0][0] <= t:
            now[0], j, ok = heapq.heappop(answers)
            throttles[j].accepted() if ok else throttles[j].refused()
        now[0] = t
        if throttles[i].allow():
            ok = service.take(t)
            heapq.heappush(answers, (t + LATENCY, i, ok))
            if t > 15:
                sent, accepted = sent + 1, accepted + ok
        heapq.heappush(arrivals, (t + rng.expovariate(demand), i))
    return sent / max(accepted, 1), sent / 25


def main() -> None:
    for name, make in VARIANTS.items():
        print(f"## {name}")
        for demand in (20.0, 200.0, 5000.0):
            for stall in (5.0, 30.0):
                first, share = recovery(make, demand, stall)
                when = f"{first} s" if first >= 0 else "> 60 s"
                print(
                    f"recovery: {demand:>6.0f}/s, stall {stall:>4.0f} s: 90 % served after "
                    f"{when:>6}, {share:6.1%} of the first minute's calls served"
                )
        for clients, demand, capacity in ((20, 50.0, 200.0), (200, 5.0, 100.0), (100, 2.0, 40.0)):
            ratio, rate = fleet(make, clients, demand, capacity)
            print(
                f"fleet: {clients:>3} x {demand:>4.0f}/s against {capacity:>4.0f}/s: "
                f"sent {rate:>5.0f}/s, {ratio:.2f} per accepted (offered {clients * demand:.0f}/s)"
            )


if __name__ == "__main__":
    main()
