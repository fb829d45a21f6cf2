"""Overload control, applied once per exchange whatever the transport (issue 14 item 1).

It sheds only the excess, cheaply, fairly, and never serves a call late:

- An adaptive limit on exchanges running at once (concurrency.py, after Envoy's adaptive
  concurrency filter). Beyond it an exchange waits in its caller's queue (fair_queue.py,
  round-robin across callers, and inside a caller across the users whose tokens it presents)
  instead of being refused: 32 or 256 callers in a closed loop are saturation, and they are
  queued and served.
- The wait is bounded, CoDel-style, by a target delay and by the caller's own deadline: the
  target is `max_queue_delay_seconds`, and at most a quarter of the time the caller gave the
  call (the standing-queue stage's share), so an accepted exchange keeps most of its deadline;
  an exchange whose predicted wait is over the target, or whose wait plus service time does not
  fit its deadline, is refused at once with slow_down (RESOURCE_EXHAUSTED / 429 + Retry-After),
  before any work.
  The prediction is the waiters served before it round-robin times the measured time between
  slot releases; a waiter that still overstays (the prediction was wrong) is refused when its
  turn comes rather than served after its deadline.
- A token bucket per caller id ([[callers]] rate, else the [server] default), on the injected
  clock, checked first.

The deadline, standing-queue and queue checks that need no caller identity also run in
screen(), which the gRPC transport calls as a call arrives, before any per-call work, so that
most overload refusals cost grpc's per-call overhead and little more; bench/results/overload.md
measures a refusal against an exchange. Every worker is one asyncio loop, so no locking is needed.
"""

import asyncio
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from sekisho.buckets import MAX_BUCKETS, BucketTable
from sekisho.callers import RateLimit
from sekisho.clock import Clock
from sekisho.concurrency import GradientLimit
from sekisho.errors import SlowDownError
from sekisho.fair_queue import FairQueue, Waiter
from sekisho.models import Caller
from sekisho.standing_queue import BUDGET_SHARE, StandingQueue

NO_DEADLINE = math.inf
ARRIVAL_TURNS = 1  # loop turns before each admitted exchange runs


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """[overload]: how long and how many exchanges may wait, and the limit's bounds; built by
    protection.queue_policy (defaults: protection_config.OverloadConfig)."""

    enabled: bool
    max_queue_delay: float
    max_queue: int
    max_queue_per_caller: int
    min_concurrency: int
    max_concurrency: int
    latency_tolerance: float


# No queue and no shedding (token buckets still apply), as [overload] enabled = false: every
# exchange runs at once, so the other bounds are never consulted.
UNQUEUED = QueuePolicy(
    enabled=False,
    max_queue_delay=math.inf,
    max_queue=0,
    max_queue_per_caller=0,
    min_concurrency=1,
    max_concurrency=1,
    latency_tolerance=1.0,
)


class Admission:
    """Admits an exchange (at once, or after a bounded fair wait) or raises SlowDownError."""

    def __init__(
        self,
        clock: Clock,
        *,
        policy: QueuePolicy,
        default_rate: RateLimit | None = None,
        rates: Mapping[str, RateLimit] | None = None,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self._clock = clock
        self._policy = policy
        self._default = default_rate
        self._rates = dict(rates or {})
        self._buckets = BucketTable(max_buckets)
        self.limit = GradientLimit(
            clock,
            minimum=self._policy.min_concurrency,
            maximum=self._policy.max_concurrency,
            tolerance=self._policy.latency_tolerance,
        )
        # New-flow turns for at most as many flows as exchanges may wait (fair_queue.py).
        self._queue = FairQueue(max_flows=max(1, self._policy.max_queue))
        self._standing = StandingQueue(self._policy.max_queue_delay)
        self._in_flight = 0
        self.shed: Counter[str] = Counter()  # refusals by reason, for /metrics

    @property
    def in_flight(self) -> int:
        """Exchanges admitted and not yet finished."""
        return self._in_flight

    @property
    def queued(self) -> int:
        """Exchanges waiting for a slot."""
        return len(self._queue)

    @property
    def concurrency_limit(self) -> int:
        """Exchanges that may run at once now (the adaptive limit)."""
        return self.limit.slots

    @property
    def shed_counts(self) -> dict[str, int]:
        """Refusals since start, by reason (rate, queue_full, caller_queue_full, queue_delay,
        deadline, standing_queue, overstayed)."""
        return dict(self.shed)

    def screen(self, flow: str, time_budget: float | None) -> None:
        """Refuse at once, before any per-call work, a call this worker cannot serve in time.

        For transports that know the caller's deadline (gRPC), called as the call arrives: before
        its message is decoded, its caller authenticated or anything logged, which is most of
        what a refusal used to cost (bench/results/overload.md, session 5). Only the checks that
        need no caller identity run here: too little time left for an exchange, a standing
        backlog before admission (per connection), a full queue, and a predicted wait over the
        target or past the deadline. `flow` is the caller's connection: for an anonymous caller
        that is its fairness key, and for an identified one (keyed by its id in admit()) the
        wait predicted for an unseen flow is a lower bound of its own; the user is not known yet
        either, and the wait predicted is that of a user with nothing queued, the least of any
        user's: so this refuses nothing admit() would queue. `time_budget` is the seconds left
        before the caller's deadline (None: no deadline). Raises: SlowDownError.
        """
        if not self._policy.enabled or time_budget is None:
            return
        now = self._clock.now()
        deadline = now + time_budget
        if now + self.limit.mean_rtt > deadline:
            # Cannot finish in time even with a slot now: refuse before any work.
            self._refuse("deadline", "too little time left before the deadline", 1.0)
        waited, fresh = self._standing.waited(flow, time_budget, now)
        if self._standing.refuse(waited, fresh, now):
            self._refuse("standing_queue", f"waited {waited:.3f}s in grpc before admission", 1.0)
        if self._in_flight >= self.limit.slots or len(self._queue):
            # The user is not known before the message is read: the wait of a user with nothing
            # queued, the least any user of the flow can wait, so this refuses nothing admit()
            # would queue.
            self._check_room(flow, None, now, deadline)

    def admit(
        self, caller: Caller, *, flow: str = "", deadline: float = NO_DEADLINE, user: str = ""
    ) -> "AdmittedSlot":
        """Hold one slot for the body (`async with admission.admit(...)`). The fairness key is
        the authenticated caller's id, else `flow` (the anonymous caller's connection or
        address): one caller on many connections is still one turn. Inside it, `user` (the
        token the exchange presents for the user or agent it acts for) is the second key: the
        caller's turns go round-robin across its users, so one user flooding through a shared
        caller (a gateway) does not starve the caller's other users. `deadline` is the
        caller's, on the clock; a transport that has one calls screen() first, as the call
        arrives. Raises (entering): SlowDownError."""
        return AdmittedSlot(self, caller, flow, deadline, user)

    async def _acquire(self, flow: str, user: str, deadline: float) -> float:
        now = self._clock.now()
        if not self._policy.enabled:
            self._in_flight += 1
            return now
        if self._in_flight < self.limit.slots and not len(self._queue):
            self._in_flight += 1
            try:
                await _let_arrivals_in()
            except asyncio.CancelledError:
                self._release(now)
                raise
            return now
        self._check_room(flow, user, now, deadline)
        waiter = Waiter(flow, now, deadline, asyncio.get_running_loop().create_future(), user=user)
        self._queue.push(waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            self._queue.remove(waiter)
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                # Granted just as the caller gave up. (Refused at dequeue, overstayed, the
                # future holds a SlowDownError and no slot was ever taken.)
                self._release(waiter.granted_at)
            raise
        try:
            await _let_arrivals_in()
        except asyncio.CancelledError:
            # The slot is this call's since the grant; the caller (__aenter__) never reaches
            # __aexit__ when this raises, so only here can it go back.
            self._release(waiter.granted_at)
            raise
        # From the grant, not from this resumption: the wait in the loop's ready queue is part
        # of the round trip the limit measures (concurrency.py).
        return waiter.granted_at

    def _check_room(self, flow: str, user: str | None, now: float, deadline: float) -> None:
        policy = self._policy
        if len(self._queue) >= policy.max_queue:
            self._refuse("queue_full", f"queue of {policy.max_queue} full", 1.0)
        if self._queue.flow_length(flow) >= policy.max_queue_per_caller:
            self._refuse("caller_queue_full", "this caller's queue is full", 1.0)
        interval = self.limit.mean_rtt / max(1, self.limit.slots)
        wait = (self._queue.expected_position(flow, user) + 1) * interval
        if now + wait + self.limit.mean_rtt > deadline:
            self._refuse("deadline", f"predicted finish {wait:.3f}s after the deadline", wait)
        if wait > (target := self._target(now, deadline)):
            self._refuse("queue_delay", f"predicted wait {wait:.3f}s over {target:.3f}s", wait)

    def _release(self, granted: float) -> None:
        now = self._clock.now()
        self.limit.sample(now - granted, self._in_flight)
        self._in_flight -= 1
        while self._in_flight < self.limit.slots and (waiter := self._queue.pop()):
            if waiter.future.done():  # cancelled while queued
                continue
            late = now + self.limit.mean_rtt > waiter.deadline
            if now - waiter.queued_at > self._target(waiter.queued_at, waiter.deadline) or late:
                # Mis-predicted: refuse now rather than serve late (CoDel's drop at dequeue).
                self.shed["overstayed"] += 1
                waiter.future.set_exception(_busy("waited past its target or deadline", 1.0))
                continue
            self._in_flight += 1
            waiter.granted_at = now
            waiter.future.set_result(None)

    def _target(self, queued_at: float, deadline: float) -> float:
        """The longest a call queued at `queued_at` may wait for a slot: the configured target,
        and at most a share of its caller's time (a 1 s deadline waits at most 0.25 s; with no
        deadline, or a long one, the configured target applies)."""
        return min(self._policy.max_queue_delay, BUDGET_SHARE * (deadline - queued_at))

    def _refuse(self, reason: str, detail: str, wait: float) -> None:
        self.shed[reason] += 1
        raise _busy(detail, wait)

    def _take_token(self, caller_id: str, key: str) -> None:
        """A token from `key`'s bucket at `caller_id`'s rate. Anonymous callers have no id and
        the default rate, each in the bucket of its network address (`key`, never the
        connection: a new connection would be a new, full bucket): in one shared bucket, one
        anonymous flood would refuse every other anonymous caller."""
        limit = self._rates.get(caller_id, self._default) if caller_id else self._default
        if limit is None or limit.rate_per_second <= 0:
            return
        wait = self._buckets.take(key, limit, self._clock.now())
        if wait:
            self.shed["rate"] += 1
            raise SlowDownError(
                "rate limit exceeded; slow down",
                log_detail=f"caller {key!r} over {limit.rate_per_second}/s",
                metadata={"retry_after": str(max(1, math.ceil(wait)))},
            )


class AdmittedSlot:
    """What admit() returns: takes the caller's token and a slot on entering, releases the slot
    on leaving, whatever the body raised. A class rather than an @asynccontextmanager: entered
    once per exchange, it saves the async generator, its loop hooks and contextlib's wrapper."""

    __slots__ = ("_admission", "_caller", "_deadline", "_flow", "_granted", "_user")

    def __init__(
        self, admission: Admission, caller: Caller, flow: str, deadline: float, user: str
    ) -> None:
        self._admission = admission
        self._caller = caller
        self._flow = flow
        self._deadline = deadline
        self._user = user
        self._granted: float | None = None

    async def __aenter__(self) -> None:
        admission, caller = self._admission, self._caller
        admission._take_token(caller.id, caller.id or peer_address(self._flow))
        self._granted = await admission._acquire(
            caller.id or self._flow, self._user, self._deadline
        )

    async def __aexit__(self, *_: object) -> None:
        granted, self._granted = self._granted, None
        if granted is not None:
            self._admission._release(granted)


async def _let_arrivals_in() -> None:
    """Give the event loop a turn before an admitted exchange runs, so calls already waiting in
    its ready queue reach admission first (and queue or are refused) instead of waiting behind
    a CPU-bound exchange that never yields."""
    for _ in range(ARRIVAL_TURNS):
        await asyncio.sleep(0)


def _busy(detail: str, wait: float) -> SlowDownError:
    return SlowDownError(
        "the server is busy; retry shortly",
        log_detail=f"overload: {detail}",
        metadata={"retry_after": str(max(1, math.ceil(wait)))},
    )


def peer_address(flow: str) -> str:
    """The network address of a transport's peer, without the port: gRPC names a peer
    `ipv4:10.0.0.1:5000` or `ipv6:[::1]:5000` (the port differs per connection), HTTP gives the
    address alone. Anything else (a unix socket, no peer) is returned as it is."""
    for scheme in ("ipv4:", "ipv6:"):
        if flow.startswith(scheme):
            return flow[len(scheme) :].rpartition(":")[0] or flow
    return flow
