"""Call slots: at most `limit` ExchangeToken RPCs of one client on the wire at once, the rest
waiting here, where their deadlines are looked at.

A gRPC channel queues the calls it cannot send yet (Sekisho allows `[grpc]
max_concurrent_streams` calls per connection, 16 by default) inside grpc, first in first out,
where nothing looks at their deadlines: a client sending faster than the service answers has
each call wait there most of its deadline, reach the service with too little time left, and be
refused by it — a refusal that costs the service CPU it has not got, so goodput falls
(bench/results/overload.md, session 9: one client at twice the capacity got 55 % of it).

Waiting here instead, as adaptive LIFO with CoDel in Facebook's servers (Maurer, "Fail at
Scale", ACM Queue 13(8), 2015; CoDel: Nichols and Jacobson, "Controlling Queue Delay", 2012):
- normally a freed slot goes to the oldest waiting call (first in, first out): a client whose
  callers saturate its slots in a closed loop (32 callers on 16 slots, each sending its next
  call when the last returns) has each call wait about one answer and is served, every call;
  newest first would hand every freed slot to the caller that just returned and starve the
  others until their deadline (15 calls a second failed at 1 s, bench/results/sdk_slots.md);
- the slots are overloaded when the oldest waiting call has waited more than the target, four
  typical answers, for longer than an interval (100 ms, tolerating a burst): calls arrive faster
  than slots free, and waiting only ages them. Then a freed slot goes to the newest waiting
  call (its caller most likely still there, with the most time left), and a call that has
  waited more than the target fails at once, unsent: the slots turned over four times and
  newer calls took every one, so it would most likely wait out its deadline here (as it did,
  refusal p99 1,000 ms with 1 s deadlines at 2x / 5x the capacity). Its caller learns within
  ~4 answers (tens of ms) and can fall back. The overload ends when no call waits any more.
  Four answers leaves room for a closed loop of up to 5 x `limit` callers per client;
- a call that had to wait is sent only if the time left is more than answered calls take
  lately; otherwise it fails at once, unsent.
Both checks run as calls arrive and slots free, on the injected clock (no timers): under
overload both happen every few milliseconds.
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
from dataclasses import dataclass, field

from sekisho.client.errors import ExchangeUnavailableError

# How many of the latest answered calls the time-left check looks at.
_RECENT = 16
# Overload: the oldest waiting call has waited more than TARGET_ANSWERS typical answers (at
# least MIN_TARGET_SECONDS) for INTERVAL_SECONDS, CoDel's interval (the service's own standing
# queue check uses it too, sekisho/standing_queue.py).
TARGET_ANSWERS = 4
MIN_TARGET_SECONDS = 0.005
INTERVAL_SECONDS = 0.1


def _not_sent(why: str) -> ExchangeUnavailableError:
    return ExchangeUnavailableError(
        "temporarily_unavailable", f"not sent: {why}", "DEADLINE_EXCEEDED"
    )


@dataclass(slots=True, eq=False)  # identity: deque.remove() runs per give-up
class _Waiter:
    queued_at: float
    # Set to None when a slot is handed to it; to an error when it fails here unsent.
    handed: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CallSlots:
    """`limit` slots and the typical time of an answered call; one per client.

    `early_refusal=False` is the behaviour before session 14 (always newest first, a waiting
    call fails only at its deadline): bench/sdk_slots_ab.py compares the two."""

    def __init__(
        self, limit: int, clock: Callable[[], float], *, early_refusal: bool = True
    ) -> None:
        if limit < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._free = limit
        self._clock = clock
        self._early_refusal = early_refusal
        # Calls waiting for a slot, oldest on the left.
        self._waiting: deque[_Waiter] = deque()
        self._answered: deque[float] = deque(maxlen=_RECENT)  # seconds, oldest on the left
        # Since when (on the clock) the oldest waiting call has been seen over the target.
        self._over_target_since: float | None = None
        self._overloaded = not early_refusal  # overloaded: newest first, and shed

    @property
    def waiting(self) -> int:
        """Calls waiting for a slot now (those that gave up are not kept)."""
        return len(self._waiting)

    @property
    def overloaded(self) -> bool:
        """Whether calls now wait newest first and fail past the target (see the top)."""
        return self._overloaded

    @property
    def typical_seconds(self) -> float:
        """What answered calls take lately: the lower median of the last 16 (0.0 until two)."""
        if len(self._answered) < 2:
            return 0.0
        ordered = sorted(self._answered)
        return ordered[(len(ordered) - 1) // 2]

    @property
    def target_seconds(self) -> float | None:
        """How long a call may wait while the slots are overloaded; None until two answers."""
        typical = self.typical_seconds
        return max(MIN_TARGET_SECONDS, TARGET_ANSWERS * typical) if typical else None

    @contextlib.asynccontextmanager
    async def slot(self, deadline: float) -> AsyncIterator[float]:
        """Hold a slot for one RPC; yields the seconds left before `deadline` (on the clock).

        Raises: ExchangeUnavailableError (DEADLINE_EXCEEDED, "not sent") when no slot frees
        before the deadline, one frees too late for a call to be answered in time, or the call
        waited past the target while the slots were overloaded."""
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
        """Until a slot is handed to this call. Raises: ExchangeUnavailableError at `deadline`
        or when shed; CancelledError when the caller cancels (a slot handed meanwhile is
        passed on)."""
        waiter = _Waiter(self._clock())
        self._waiting.append(waiter)
        self._shed_if_overloaded()
        handed = waiter.handed
        try:
            # Not asyncio.wait_for: on Python 3.11 it returns the result, swallowing the
            # caller's cancellation, when `handed` is set in the same loop turn as the cancel,
            # and the cancelled call would be sent. Here a cancellation always propagates.
            async with asyncio.timeout(deadline - self._clock()):
                await handed
        except BaseException as error:
            if not handed.done() or handed.cancelled():
                # Gone from the deque now, not when a release reaches it: under sustained
                # overload the newest are served and releases never reach an old entry, so
                # every call that gave up would stay here for as long as an older one waits.
                with contextlib.suppress(ValueError):  # a release already dropped it
                    self._waiting.remove(waiter)
            elif handed.exception() is None:
                self._release()  # handed a slot as it gave up: pass it on
            # else shed: already out of the deque
            if isinstance(error, TimeoutError):
                raise _not_sent("no call slot freed before the deadline") from None
            raise

    def _release(self) -> None:
        """A slot ends: to a call still waiting (oldest first, newest first while overloaded),
        else back to the free count."""
        self._shed_if_overloaded()
        waiting = self._waiting
        while waiting:
            waiter = waiting.pop() if self._overloaded else waiting.popleft()
            if not waiter.handed.done():
                waiter.handed.set_result(None)
                return
        self._free += 1

    def _shed_if_overloaded(self) -> None:
        """CoDel on the oldest waiting call's wait: enter the overload once it has been over
        the target for an interval, leave it when no call waits; while in it, fail every call
        that has waited past the target."""
        if not self._early_refusal:
            return
        if not self._waiting:
            self._overloaded, self._over_target_since = False, None
            return
        now, target = self._clock(), self.target_seconds
        if target is None or now - self._waiting[0].queued_at <= target:
            self._over_target_since = None
            return
        if self._over_target_since is None:
            self._over_target_since = now
        if now - self._over_target_since >= INTERVAL_SECONDS:
            self._overloaded = True
        if self._overloaded:
            self._shed(now, target)

    def _shed(self, now: float, target: float) -> None:
        """Fail, unsent, every waiting call that has waited more than `target`, oldest first."""
        while self._waiting and now - self._waiting[0].queued_at > target:
            oldest = self._waiting.popleft()
            if not oldest.handed.done():
                waited = now - oldest.queued_at
                oldest.handed.set_exception(_not_sent(
                    f"waited {waited:.3f}s for a call slot while calls arrive faster than "
                    f"slots free (over {TARGET_ANSWERS} answers, {target:.3f}s)"
                ))  # fmt: skip
