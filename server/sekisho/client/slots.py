"""Call slots: at most `limit` ExchangeToken RPCs of one client on the wire at once, the rest
waiting here, newest first, where their deadlines are looked at.

A gRPC channel queues the calls it cannot send yet (Sekisho allows `[grpc]
max_concurrent_streams` calls per connection, 16 by default) inside grpc, first in first out,
where nothing looks at their deadlines: a client sending faster than the service answers has
each call wait there most of its deadline, reach the service with too little time left, and be
refused by it — a refusal that costs the service CPU it has not got, so goodput falls
(bench/results/overload.md, session 9: one client at twice the capacity got 55 % of it).

Waiting here instead:
- a freed slot goes to the newest waiting call (last in, first out, as adaptive LIFO in
  Facebook's servers): under overload the calls with the most time left go out and are
  answered in time, and the oldest run out their deadline here, never sent; with no backlog
  the order does not matter;
- a call that had to wait is sent only if the time left is more than answered calls take
  lately; otherwise it fails at once, unsent.
"Lately" is the lower median of the last 16 answers' times, not an average seeded with the first
answer: one slow answer (a cold start: the first call's connection and TLS handshake, the
service's first JWKS fetch) is an outlier, and taken outright it had queued calls refused here
for several answers after. One answer alone is no estimate (nothing is refused for time until
two are in); under a lasting slowdown the median follows once it is half the window.
A call that finds a slot free is always sent, so nothing here can lock a client out: every slot
frees when its call ends.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

from sekisho.client.errors import ExchangeUnavailableError

# How many of the latest answered calls the time-left check looks at.
_RECENT = 16


def _not_sent(why: str) -> ExchangeUnavailableError:
    return ExchangeUnavailableError(
        "temporarily_unavailable", f"not sent: {why}", "DEADLINE_EXCEEDED"
    )


class CallSlots:
    """`limit` slots and the typical time of an answered call; one per client."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        if limit < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._free = limit
        self._clock = clock
        # Calls waiting for a slot, oldest on the left; a slot is handed to the newest.
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._answered: deque[float] = deque(maxlen=_RECENT)  # seconds, oldest on the left

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot now (those that gave up are not kept)."""
        return len(self._waiting)

    @property
    def typical_seconds(self) -> float:
        """What answered calls take lately: the lower median of the last 16 (0.0 until two)."""
        if len(self._answered) < 2:
            return 0.0
        ordered = sorted(self._answered)
        return ordered[(len(ordered) - 1) // 2]

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[float]:
        """Hold a slot for one RPC; yields the seconds left before `deadline` (on the clock).

        Raises: ExchangeUnavailableError (DEADLINE_EXCEEDED, "not sent") when no slot frees
        before the deadline, or one frees too late for a call to be answered in time."""
        if self._free:
            self._free -= 1
        else:
            await self._wait(deadline)
            left, typical = deadline - self._clock(), self.typical_seconds
            if left <= typical:
                self._release()
                raise _not_sent(
                    f"{left:.3f}s left after waiting for a call slot, answers take {typical:.3f}s"
                )
        try:
            yield deadline - self._clock()
        finally:
            self._release()

    def answered(self, seconds: float) -> None:
        """A sent call was answered (anything but an overload refusal) after `seconds`."""
        self._answered.append(seconds)

    async def _wait(self, deadline: float) -> None:
        """Until a slot is handed to this call. Raises: ExchangeUnavailableError at `deadline`;
        CancelledError when the caller cancels (a slot handed meanwhile is passed on)."""
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(handed)
        try:
            # Not asyncio.wait_for: on Python 3.11 it returns the result, swallowing the
            # caller's cancellation, when `handed` is set in the same loop turn as the cancel,
            # and the cancelled call would be sent. Here a cancellation always propagates.
            async with asyncio.timeout(deadline - self._clock()):
                await handed
        except BaseException as error:
            if handed.done() and not handed.cancelled():
                self._release()  # handed a slot as it gave up: pass it on
            else:
                # Gone from the deque now, not when a release reaches it: under sustained
                # overload the newest are served and releases never reach an old entry, so
                # every call that gave up would stay here for as long as an older one waits.
                with contextlib.suppress(ValueError):  # a release already dropped it
                    self._waiting.remove(handed)
            if isinstance(error, TimeoutError):
                raise _not_sent("no call slot freed before the deadline") from None
            raise

    def _release(self) -> None:
        """A slot ends: to the newest call still waiting, else back to the free count."""
        waiting = self._waiting
        while waiting:
            handed = waiting.pop()
            if not handed.done():
                handed.set_result(None)
                return
        self._free += 1
