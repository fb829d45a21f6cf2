"""The overload control's queue (issue 14): bounded by a delay target and the caller's deadline,
fair across callers, refusing at once what it cannot serve in time, and an adaptive limit that
stays small for CPU-bound work and grows for I/O-bound work."""

import asyncio

import pytest
from sekisho.admission import Admission
from sekisho.concurrency import GradientLimit
from sekisho.errors import SlowDownError
from sekisho.models import Caller
from sekisho.standing_queue import INTERVAL, StandingQueue

from tests.bounds import queue_policy
from tests.fakes.clock import FakeClock

ONE_SLOT = queue_policy(min_concurrency=1, max_concurrency=1, max_queue_delay=1.0)
ANON = Caller()


class Held:
    """An admitted exchange that holds its slot until released."""

    def __init__(
        self,
        admission: Admission,
        flow: str,
        deadline: float | None = None,
        caller: Caller = ANON,
        user: str = "",
    ) -> None:
        self.release = asyncio.Event()
        self.admitted = asyncio.Event()
        kwargs = {} if deadline is None else {"deadline": deadline}
        self.task = asyncio.create_task(self._run(admission, flow, caller, user, kwargs))

    async def _run(
        self,
        admission: Admission,
        flow: str,
        caller: Caller,
        user: str,
        kwargs: dict[str, float],
    ) -> None:
        async with admission.admit(caller, flow=flow, user=user, **kwargs):
            self.admitted.set()
            await self.release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def _measured(admission: Admission, rtt: float) -> None:
    """Teach the limit an exchange takes `rtt` seconds."""
    for _ in range(40):
        admission.limit.sample(rtt)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_a_free_slot_admits_at_once(clock: FakeClock) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    held = Held(admission, "a")
    await _settle()
    assert held.admitted.is_set() and admission.in_flight == 1 and admission.queued == 0
    held.release.set()
    await held.task
    assert admission.in_flight == 0


async def test_beyond_the_limit_waits_in_the_queue_then_runs(clock: FakeClock) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    first, second = Held(admission, "a"), Held(admission, "a")
    await _settle()
    assert first.admitted.is_set() and not second.admitted.is_set()
    assert admission.queued == 1
    first.release.set()
    await _settle()
    assert second.admitted.is_set() and admission.queued == 0
    second.release.set()
    await second.task


async def test_round_robin_across_flows_a_flood_does_not_starve_a_polite_caller(
    clock: FakeClock,
) -> None:
    admission = Admission(clock, policy=queue_policy(min_concurrency=1, max_concurrency=1))
    running = Held(admission, "flood")
    await _settle()
    flood = [Held(admission, "flood") for _ in range(10)]
    await _settle()
    polite = Held(admission, "polite")
    await _settle()
    running.release.set()
    await _settle()
    assert flood[0].admitted.is_set()  # the flood's turn
    flood[0].release.set()
    await _settle()
    assert polite.admitted.is_set()  # then the polite caller, not after the other nine
    assert not flood[1].admitted.is_set()
    for held in (polite, *flood):
        held.release.set()
    await asyncio.gather(running.task, *(held.task for held in (polite, *flood)))


async def test_round_robin_across_users_of_one_caller_a_flooding_user_does_not_starve_the_rest(
    clock: FakeClock,
) -> None:
    """A gateway is one caller for all its users: one user's flood takes that caller's turns
    only in turn with its other users, and the caller's turns still alternate with other
    callers'."""
    admission = Admission(clock, policy=queue_policy(min_concurrency=1, max_concurrency=1))
    gateway = Caller(id="spiffe://example.org/gateway", authenticated_by="mtls")
    running = Held(admission, "conn", caller=gateway, user="mallory-token")
    await _settle()
    flood = [Held(admission, "conn", caller=gateway, user="mallory-token") for _ in range(10)]
    await _settle()
    alice = Held(admission, "conn", caller=gateway, user="alice-token")
    other = Held(admission, "conn-2")  # another caller
    await _settle()
    running.release.set()
    await _settle()
    assert flood[0].admitted.is_set()  # the gateway's turn, its flooding user's
    flood[0].release.set()
    await _settle()
    assert other.admitted.is_set()  # the other caller's turn
    other.release.set()
    await _settle()
    assert alice.admitted.is_set()  # the gateway's next turn: its other user, not the flood
    assert not flood[1].admitted.is_set()
    for held in (alice, *flood):
        held.release.set()
    await asyncio.gather(*(held.task for held in (running, other, alice, *flood)))


async def test_a_flooding_users_backlog_does_not_refuse_another_user_of_its_caller(
    clock: FakeClock,
) -> None:
    """The wait predicted for a user is its own place in its caller's turns: a user whose
    caller is flooded by someone else is queued, not refused for the flood's backlog."""
    admission = Admission(clock, policy=ONE_SLOT)  # target 1 s
    _measured(admission, 0.3)
    gateway = Caller(id="gw")
    running = Held(admission, "conn", caller=gateway, user="mallory")
    queued = [Held(admission, "conn", caller=gateway, user="mallory") for _ in range(3)]
    await _settle()
    with pytest.raises(SlowDownError):  # mallory's fourth: 1.2 s predicted, over the target
        await asyncio.wait_for(admission.admit(gateway, user="mallory").__aenter__(), 0.1)
    admission.screen("conn", 5.0)  # the user is unknown to the screen: not refused there
    alice = Held(admission, "conn", caller=gateway, user="alice")  # next turn: 0.6 s
    await _settle()
    assert admission.queued == 4 and admission.shed_counts == {"queue_delay": 1}
    running.release.set()
    await _settle()
    assert queued[0].admitted.is_set()
    queued[0].release.set()
    await _settle()
    assert alice.admitted.is_set() and not queued[1].admitted.is_set()
    for held in (alice, *queued[1:]):
        held.release.set()
    await asyncio.gather(*(held.task for held in (running, *queued, alice)))


async def test_predicted_wait_over_the_target_is_refused_at_once(clock: FakeClock) -> None:
    admission = Admission(clock, policy=ONE_SLOT)  # target 1 s
    _measured(admission, 0.3)
    running = Held(admission, "a")
    await _settle()
    queued = [Held(admission, "a") for _ in range(3)]  # waits 0.3, 0.6, 0.9 s: within target
    await _settle()
    assert admission.queued == 3
    with pytest.raises(SlowDownError) as raised:
        await asyncio.wait_for(admission.admit(ANON, flow="a").__aenter__(), timeout=0.1)
    assert raised.value.reason == "slow_down"
    assert admission.shed_counts == {"queue_delay": 1}
    for held in (running, *queued):
        held.release.set()
    await asyncio.gather(*(held.task for held in (running, *queued)))


async def test_the_wait_target_is_a_share_of_the_callers_deadline(clock: FakeClock) -> None:
    admission = Admission(clock, policy=ONE_SLOT)  # configured target 1 s
    _measured(admission, 0.1)
    held = [Held(admission, "a") for _ in range(4)]  # one running, three queued
    await _settle()
    # Flow b goes second in turn: predicted wait 0.2 s, finish 0.3 s, inside its 0.5 s deadline,
    # but over a quarter of it: refused at once rather than served with little time left.
    with pytest.raises(SlowDownError):
        await asyncio.wait_for(
            admission.admit(ANON, flow="b", deadline=clock.now() + 0.5).__aenter__(), 0.1
        )
    assert admission.shed_counts == {"queue_delay": 1}
    patient = Held(admission, "c", deadline=clock.now() + 2.0)  # 0.2 s of 2 s: queued
    await _settle()
    assert admission.queued == 4 and admission.shed_counts == {"queue_delay": 1}
    for entry in (*held, patient):
        entry.release.set()
    await asyncio.gather(*(entry.task for entry in (*held, patient)))


async def test_a_waiter_over_its_share_of_the_deadline_at_its_turn_is_refused(
    clock: FakeClock,
) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    running = Held(admission, "a")
    await _settle()
    waiter = Held(admission, "b", deadline=clock.now() + 1.0)
    await _settle()
    clock.advance(0.3)  # waited 0.3 s of its 1 s: time is left, but over its quarter
    running.release.set()
    with pytest.raises(SlowDownError):
        await waiter.task
    assert not waiter.admitted.is_set()
    assert admission.shed_counts == {"overstayed": 1} and admission.in_flight == 0


async def test_a_call_that_cannot_finish_before_its_deadline_is_refused_at_once(
    clock: FakeClock,
) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    _measured(admission, 0.3)
    running = Held(admission, "a")
    await _settle()
    with pytest.raises(SlowDownError):  # wait 0.3 + service 0.3 > 0.5 s left
        await asyncio.wait_for(
            admission.admit(ANON, flow="a", deadline=clock.now() + 0.5).__aenter__(), 0.1
        )
    assert admission.shed_counts == {"deadline": 1}
    patient = Held(admission, "a", deadline=clock.now() + 5.0)  # fits: queued
    await _settle()
    assert admission.queued == 1
    running.release.set()
    await _settle()
    assert patient.admitted.is_set()
    patient.release.set()
    await asyncio.gather(running.task, patient.task)


async def test_a_waiter_past_its_deadline_at_its_turn_is_refused_not_served_late(
    clock: FakeClock,
) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    running = Held(admission, "a")
    await _settle()
    late = Held(admission, "a", deadline=clock.now() + 0.5)
    await _settle()
    clock.advance(0.6)  # the running exchange took longer than predicted
    running.release.set()
    with pytest.raises(SlowDownError):
        await late.task
    assert not late.admitted.is_set()
    assert admission.shed_counts == {"overstayed": 1} and admission.in_flight == 0


async def test_a_waiter_refused_at_its_turn_and_cancelled_in_the_same_turn_frees_nothing(
    clock: FakeClock,
) -> None:
    # Refused at dequeue (overstayed: its future holds a SlowDownError, no slot) just as its
    # caller's deadline cancels it: the cancellation arrives at `await waiter.future` with the
    # future done. Releasing there freed a slot never granted: in_flight went to -1 (one extra
    # exchange admitted past the limit for the worker's life) and the limit took a round trip
    # measured from 0.0 (the epoch of the clock).
    admission = Admission(clock, policy=ONE_SLOT)
    holder = admission.admit(ANON, flow="a")
    await holder.__aenter__()
    late = Held(admission, "a", deadline=clock.now() + 0.5)
    await _settle()
    clock.advance(0.6)
    await holder.__aexit__(None, None, None)  # refuses the waiter: overstayed
    assert admission.shed_counts == {"overstayed": 1}
    late.task.cancel()  # the same loop turn
    with pytest.raises(asyncio.CancelledError):
        await late.task
    assert admission.in_flight == 0
    assert admission.limit.mean_rtt < 1.0


async def test_queue_bounds_refuse_at_once(clock: FakeClock) -> None:
    policy = queue_policy(min_concurrency=1, max_concurrency=1, max_queue=3, max_queue_per_caller=2)
    admission = Admission(clock, policy=policy)
    running = Held(admission, "a")
    await _settle()
    held = [Held(admission, "a"), Held(admission, "a")]
    await _settle()
    with pytest.raises(SlowDownError):
        await admission.admit(ANON, flow="a").__aenter__()  # a's own queue is full
    held.append(Held(admission, "b"))
    await _settle()
    with pytest.raises(SlowDownError):
        await admission.admit(ANON, flow="c").__aenter__()  # the whole queue is full
    assert admission.shed_counts == {"caller_queue_full": 1, "queue_full": 1}
    for entry in (running, *held):
        entry.release.set()
    await asyncio.gather(*(entry.task for entry in (running, *held)))


async def test_fairness_keys_on_the_authenticated_caller_not_its_connections(
    clock: FakeClock,
) -> None:
    policy = queue_policy(min_concurrency=1, max_concurrency=1, max_queue_per_caller=1)
    admission = Admission(clock, policy=policy)
    agent = Caller(id="spiffe://example.org/agent", authenticated_by="mtls")
    running = Held(admission, "conn-1")
    queued = Held(admission, "conn-2", caller=agent)
    await _settle()
    with pytest.raises(SlowDownError):  # a second connection is not a second queue
        await asyncio.wait_for(admission.admit(agent, flow="conn-3").__aenter__(), 0.1)
    anonymous = Held(admission, "conn-4")  # an anonymous caller is its connection
    await _settle()
    assert admission.queued == 2 and admission.shed_counts == {"caller_queue_full": 1}
    for entry in (running, queued, anonymous):
        entry.release.set()
    await asyncio.gather(*(entry.task for entry in (running, queued, anonymous)))


async def test_a_cancelled_waiter_leaves_the_queue_and_keeps_no_slot(clock: FakeClock) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    running = Held(admission, "a")
    await _settle()
    waiting = Held(admission, "a")
    await _settle()
    waiting.task.cancel()
    await _settle()
    assert admission.queued == 0
    running.release.set()
    await running.task
    assert admission.in_flight == 0
    after = Held(admission, "a")
    await _settle()
    assert after.admitted.is_set()
    after.release.set()
    await after.task


async def test_a_waiter_cancelled_in_the_turn_after_its_grant_keeps_no_slot(
    clock: FakeClock,
) -> None:
    # A slot granted to a queued waiter is its own once _release sets its future; the waiter then
    # yields one loop turn (_let_arrivals_in) before admit() returns. A cancellation landing in
    # that turn (the caller's deadline, a reset stream) must give the slot back: nothing else
    # can, for __aexit__ never runs when __aenter__ raised, and every such leak was a slot lost
    # for the worker's life.
    admission = Admission(clock, policy=ONE_SLOT)
    holder = admission.admit(ANON, flow="a")
    await holder.__aenter__()
    waiting = Held(admission, "a")
    await _settle()
    assert admission.queued == 1
    await holder.__aexit__(None, None, None)  # grants the waiter its slot, synchronously
    assert admission.in_flight == 1 and admission.queued == 0
    await asyncio.sleep(0)  # the waiter wakes, takes the grant and yields in its arrival turn
    assert not waiting.admitted.is_set()
    waiting.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting.task
    assert admission.in_flight == 0
    after = Held(admission, "a")
    await _settle()
    assert after.admitted.is_set()
    after.release.set()
    await after.task


async def test_disabled_admits_everything_at_once(clock: FakeClock) -> None:
    admission = Admission(clock, policy=queue_policy(enabled=False, max_concurrency=1))
    held = [Held(admission, "a") for _ in range(20)]
    await _settle()
    assert all(entry.admitted.is_set() for entry in held) and admission.queued == 0
    for entry in held:
        entry.release.set()
    await asyncio.gather(*(entry.task for entry in held))


def _drive(limit: GradientLimit, clock: FakeClock, rtt_for_slots: float, rounds: int) -> None:
    for _ in range(rounds):
        clock.advance(0.01)
        rtt = rtt_for_slots * limit.slots if rtt_for_slots > 0 else -rtt_for_slots
        limit.sample(rtt, in_flight=limit.slots)  # every slot in use


def test_cpu_bound_work_keeps_the_limit_small() -> None:
    """Each extra slot adds one exchange's time to every round trip: the gradient holds the
    limit near the tolerance instead of growing it."""
    clock = FakeClock()
    limit = GradientLimit(clock, minimum=1, maximum=64, tolerance=2.0)
    _drive(limit, clock, 0.004, 2000)
    assert 1 <= limit.slots <= 4


def test_io_bound_work_grows_the_limit() -> None:
    """Latency flat as slots are added (waiting on OPA or KMS): the limit climbs to its max."""
    clock = FakeClock()
    limit = GradientLimit(clock, minimum=1, maximum=64, tolerance=2.0)
    _drive(limit, clock, -0.010, 2000)
    assert limit.slots == 64


def test_an_unused_limit_does_not_grow() -> None:
    """Latency flat but never more than one exchange in flight: no evidence for more slots."""
    clock = FakeClock()
    limit = GradientLimit(clock, minimum=1, maximum=64, tolerance=2.0)
    for _ in range(2000):
        clock.advance(0.01)
        limit.sample(0.010, in_flight=1)
    assert limit.slots <= 4


def test_min_rtt_is_remeasured_with_the_limit_pinned_to_its_minimum() -> None:
    clock = FakeClock()
    limit = GradientLimit(clock, minimum=2, maximum=64, tolerance=2.0)
    _drive(limit, clock, -0.010, 500)
    assert limit.slots == 64
    clock.advance(31)
    assert limit.measuring_min_rtt and limit.slots == 2


def test_a_call_with_too_little_time_left_is_screened_out_even_with_a_free_slot(
    clock: FakeClock,
) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    _measured(admission, 0.3)
    with pytest.raises(SlowDownError):
        admission.screen("conn-a", 0.2)
    assert admission.shed_counts == {"deadline": 1} and admission.in_flight == 0
    admission.screen("conn-a", 0.5)  # fits: passes the screen


async def test_the_screen_refuses_what_cannot_be_queued_in_time_without_the_caller(
    clock: FakeClock,
) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    _measured(admission, 0.3)
    running = Held(admission, "conn-a")
    await _settle()
    with pytest.raises(SlowDownError):  # wait 0.3 + service 0.3 > 0.5 s left
        admission.screen("conn-b", 0.5)
    assert admission.shed_counts == {"deadline": 1}
    admission.screen("conn-b", 5.0)  # fits: left to admit(), which queues it
    running.release.set()
    await running.task


async def test_the_screen_never_refuses_what_admit_would_queue_for_an_identified_caller(
    clock: FakeClock,
) -> None:
    """An identified caller is keyed by its id in admit(), by its connection in the screen: the
    screen's wait for an unseen flow must not exceed the caller's own."""
    admission = Admission(clock, policy=queue_policy(max_concurrency=1, max_queue_delay=1.0))
    _measured(admission, 0.1)
    caller = Caller(id="svc")
    running = Held(admission, "conn-x", caller=caller)
    queued = [Held(admission, "conn-y", deadline=clock.now() + 4.0) for _ in range(3)]
    await _settle()
    assert admission.queued == 3
    admission.screen("conn-z", 4.0)  # svc's next call from a new connection: not refused
    late = Held(admission, "conn-z", deadline=clock.now() + 4.0, caller=caller)
    await _settle()
    assert admission.queued == 4 and not admission.shed_counts
    for held in (running, *queued, late):
        held.release.set()
    await asyncio.wait_for(asyncio.gather(*(h.task for h in (running, *queued, late))), 1)


def test_a_standing_backlog_is_screened_out_per_connection(clock: FakeClock) -> None:
    admission = Admission(clock, policy=ONE_SLOT)
    admission.screen("conn-a", 30.0)  # the connection's fresh budget
    admission.screen("conn-a", 1.0)  # waited 29 s: above target, a burst so far
    clock.advance(2 * INTERVAL)
    with pytest.raises(SlowDownError):
        admission.screen("conn-a", 1.0)
    assert admission.shed_counts == {"standing_queue": 1}
    admission.screen("conn-b", 1.0)  # another connection's calls are fresh


def test_a_standing_backlog_before_admission_is_drained_not_a_burst() -> None:
    """Calls of a flow with 1 s timeouts arriving with 0.5 s left waited 0.5 s inside grpc:
    over a quarter of their budget. Tolerated for one interval (a burst), then refused until a
    call arrives within the target again."""
    standing = StandingQueue(max_target=2.0)
    now = 100.0
    assert standing.waited("a", 1.0, now) == (0.0, 1.0)  # a fresh call: the flow's budget
    waited, fresh = standing.waited("a", 0.5, now)
    assert (waited, fresh) == (0.5, 1.0)
    assert not standing.refuse(waited, fresh, now)  # a burst so far
    assert standing.refuse(waited, fresh, now + 2 * INTERVAL)  # standing: refuse
    assert not standing.refuse(0.1, fresh, now + 2 * INTERVAL)  # within target: drained


def test_a_long_timeout_queue_is_saturation_not_a_standing_queue() -> None:
    """256 closed-loop callers with 20 s timeouts wait ~1.4 s: within the target (2 s cap)."""
    standing = StandingQueue(max_target=2.0)
    standing.waited("a", 20.0, 0.0)
    waited, fresh = standing.waited("a", 18.6, 0.0)
    assert not standing.refuse(waited, fresh, 0.0)
    assert not standing.refuse(waited, fresh, 10.0)
