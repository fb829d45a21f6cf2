"""sekisho.client's call slots (slots.py): calls beyond `max_in_flight` wait in the client, oldest
first; while calls arrive faster than slots free, newest first, and one that waited past the
target fails at once; one whose deadline would pass before an answer is never sent.

The tests of the overload use a FakeClock that only `_Service.answer` moves, and deadlines an
hour away (real-time timeouts never fire): which call is sent or refused, and after how long on
the clock, follows from the order of events alone."""

import asyncio
import contextlib
import time
from collections import Counter, deque

import pytest
from sekisho.client.errors import ExchangeUnavailableError
from sekisho.client.slots import INTERVAL_SECONDS, CallSlots

from tests.fakes.clock import FakeClock

HOUR = 3600.0


async def _hold(slots: CallSlots, deadline: float, got: list[str], name: str) -> None:
    async with slots.slot(deadline):
        got.append(name)


async def test_no_slot_before_the_deadline_fails_unsent() -> None:
    slots = CallSlots(1, time.monotonic)
    async with slots.slot(time.monotonic() + 30):
        with pytest.raises(ExchangeUnavailableError, match="not sent") as failed:
            async with slots.slot(time.monotonic() + 0.05):
                raise AssertionError("no slot was free")
    assert failed.value.code == "DEADLINE_EXCEEDED"
    async with slots.slot(time.monotonic() + 30):  # the slot came back
        pass


async def _sent_after_waiting(slots: CallSlots, clock: FakeClock, left: float) -> bool:
    """Whether a call that had to wait for a slot, and got it with `left` seconds before its
    deadline on `clock` (the slots' clock), is sent. On the wall clock, a stall of about `left`
    on a loaded host made a call that should go out miss its deadline; here the call may wait
    HOUR of real time, and the clock moves to `left` before its deadline while it waits."""
    sent: list[str] = []
    async with slots.slot(clock.now() + 2 * HOUR):
        waiting = asyncio.create_task(_hold(slots, clock.now() + HOUR, sent, "waited"))
        await asyncio.sleep(0.01)
        clock.advance(HOUR - left)
    with contextlib.suppress(ExchangeUnavailableError):  # "not sent": refused here
        await waiting
    return sent == ["waited"]


async def test_a_call_that_waited_too_long_for_an_answer_in_time_is_not_sent() -> None:
    slots, sent = CallSlots(1, time.monotonic), []
    for _ in range(3):
        slots.answered(5.0)  # answers take 5 s lately
    async with slots.slot(time.monotonic() + 30):
        waiting = asyncio.create_task(_hold(slots, time.monotonic() + 2.0, sent, "late"))
        await asyncio.sleep(0.01)
    with pytest.raises(ExchangeUnavailableError, match="not sent"):
        await waiting  # a slot came with < 2 s left, and answers take 5 s
    assert sent == []
    async with slots.slot(time.monotonic() + 1.0):  # a free slot is always taken: no lock-out
        sent.append("fresh")
    assert sent == ["fresh"]


async def test_one_slow_first_answer_does_not_refuse_the_calls_after_it() -> None:
    # A cold start (the first call's handshake, the service's first JWKS fetch) answered in
    # 5 s, the rest in 10 ms: taken outright (then averaged), that first answer had every call
    # that waited with less than ~5 s left refused here, unsent, for several answers after.
    clock = FakeClock()
    slots = CallSlots(1, clock.now)
    slots.answered(5.0)
    assert await _sent_after_waiting(slots, clock, 2.0)  # one answer is no estimate yet
    slots.answered(0.01)
    assert await _sent_after_waiting(slots, clock, 2.0)
    assert slots.typical_seconds == 0.01


async def test_one_slow_answer_among_fast_ones_is_not_what_answers_take() -> None:
    clock = FakeClock()
    slots = CallSlots(1, clock.now)
    for seconds in (0.01, 0.02, 5.0, 0.01, 0.02):
        slots.answered(seconds)
    assert slots.typical_seconds == 0.02
    assert await _sent_after_waiting(slots, clock, 2.0)


async def test_the_estimate_follows_a_lasting_slowdown() -> None:
    # Robust to an outlier, not deaf: once the slow answers are half the window, calls that
    # cannot be answered in time are kept here again.
    clock = FakeClock()
    slots = CallSlots(1, clock.now)
    for _ in range(16):
        slots.answered(0.01)
    for _ in range(8):
        slots.answered(5.0)
    assert slots.typical_seconds == 0.01
    slots.answered(5.0)
    assert slots.typical_seconds == 5.0
    assert not await _sent_after_waiting(slots, clock, 2.0)


async def test_a_slot_handed_to_a_caller_that_gave_up_is_passed_on() -> None:
    slots, got = CallSlots(1, time.monotonic), []
    deadline = time.monotonic() + 30
    async with slots.slot(deadline):
        gave_up = asyncio.create_task(_hold(slots, deadline, got, "gave up"))
        await asyncio.sleep(0)
        gave_up.cancel()
        await asyncio.sleep(0)
    with pytest.raises(asyncio.CancelledError):
        await gave_up
    async with slots.slot(time.monotonic() + 0.05):  # free at once: nothing leaked
        got.append("next")
    assert got == ["next"]


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        CallSlots(0, time.monotonic)


async def test_a_caller_cancelled_as_its_slot_is_handed_is_not_sent() -> None:
    slots, sent = CallSlots(1, time.monotonic), []
    deadline = time.monotonic() + 30
    holder = slots.slot(deadline)
    await holder.__aenter__()
    waiting = asyncio.create_task(_hold(slots, deadline, sent, "cancelled"))
    await asyncio.sleep(0)
    await holder.__aexit__(None, None, None)  # hands the slot to the waiting call...
    waiting.cancel()  # ...which is cancelled in the same loop turn
    with pytest.raises(asyncio.CancelledError):
        await waiting  # asyncio.wait_for (3.11) returned the slot and swallowed the cancel
    assert sent == []
    async with slots.slot(time.monotonic() + 30):  # the handed slot was passed on
        sent.append("next")
    assert sent == ["next"]


async def test_calls_that_gave_up_are_not_kept_while_an_older_call_waits() -> None:
    # Sustained overload: the newest waiting calls are served, so a release never reaches an
    # old entry; with one old call still waiting (a long deadline), every newer call that gave
    # up stayed in the waiting deque: memory grew with the excess rate times the old deadline.
    slots = CallSlots(1, time.monotonic)
    got: list[str] = []
    async with slots.slot(time.monotonic() + 30):
        old = asyncio.create_task(_hold(slots, time.monotonic() + 3600, got, "old"))
        await asyncio.sleep(0)
        for _ in range(200):
            gave_up = asyncio.create_task(_hold(slots, time.monotonic() + 30, got, "gave up"))
            await asyncio.sleep(0)
            gave_up.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gave_up
        assert slots.waiting == 1
    await old
    assert got == ["old"] and slots.waiting == 0


async def _settle() -> None:
    """Lets every task run until it waits again (a slot handed on, a call sent)."""
    for _ in range(20):
        await asyncio.sleep(0)


class _Service:
    """Answers the calls holding slots on a FakeClock, the longest sent first, one every `gap`
    seconds, and tells the slots each answer took `answer_seconds` (fixed: the target, four of
    them, stays where the test puts it)."""

    def __init__(
        self,
        slots: CallSlots,
        clock: FakeClock,
        gap: float,
        answer_seconds: float,
        *,
        primed: bool = True,
    ) -> None:
        self.slots, self.clock, self.gap, self.answer_seconds = slots, clock, gap, answer_seconds
        for _ in range(2 if primed else 0):  # two answers: an estimate of what answers take
            slots.answered(answer_seconds)
        self.in_flight: deque[asyncio.Future[None]] = deque()
        self.idle_answers = 0  # answer() found no call in flight
        # (caller, "ok" or "not sent", seconds on the clock it waited for a slot or a refusal)
        self.outcomes: list[tuple[str, str, float]] = []

    async def call(self, name: str) -> None:
        started = waited = self.clock.now()
        try:
            async with self.slots.slot(started + HOUR):
                waited = self.clock.now()
                answered = asyncio.get_running_loop().create_future()
                self.in_flight.append(answered)
                await answered
                self.slots.answered(self.answer_seconds)
            outcome = "ok"
        except ExchangeUnavailableError as error:
            # The SDK's local refusal, as a slot timeout is: retryable, never sent.
            local = error.code == "DEADLINE_EXCEEDED" and "not sent" in str(error)
            outcome = "not sent" if local else str(error)
            waited = self.clock.now()
        self.outcomes.append((name, outcome, waited - started))

    async def answer(self) -> None:
        self.clock.advance(self.gap)
        if self.in_flight:
            self.in_flight.popleft().set_result(None)
        else:
            self.idle_answers += 1
        await _settle()

    def waits(self, outcome: str) -> list[float]:
        return sorted(waited for _, got, waited in self.outcomes if got == outcome)


async def test_a_freed_slot_goes_to_the_oldest_waiting_call() -> None:
    clock = FakeClock()
    slots = CallSlots(1, clock.now)
    service = _Service(slots, clock, gap=0.01, answer_seconds=0.01)
    first = asyncio.create_task(service.call("first"))
    await _settle()
    for name in ("older", "newer"):
        asyncio.create_task(service.call(name))  # noqa: RUF006 (awaited through the outcomes)
        await _settle()
    for _ in range(3):
        await service.answer()
    await first
    assert [name for name, _, _ in service.outcomes] == ["first", "older", "newer"]


async def test_closed_loop_saturation_is_served_in_turn_and_never_refused() -> None:
    # 8 callers on 4 slots (32 on 16 in the bench), each sending its next call as soon as the
    # last returns: the queue never empties, every call waits about one answer. Newest first,
    # each freed slot went to the caller that had just returned: 5 callers took turns and the
    # other 3 waited until their deadline (bench/results/sdk_slots.md: 15 calls a second
    # failed at 1 s).
    clock = FakeClock()
    slots = CallSlots(4, clock.now)
    service = _Service(slots, clock, gap=0.005, answer_seconds=0.021)

    async def caller(name: str) -> None:
        while True:
            await service.call(name)

    callers = [asyncio.create_task(caller(f"caller{n}")) for n in range(8)]
    await _settle()
    for _ in range(800):  # 4 s on the clock: 800 answers, 100 per caller when served in turn
        await service.answer()
    for task in callers:
        task.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    assert service.waits("not sent") == []
    assert min(Counter(name for name, _, _ in service.outcomes).values()) >= 95
    assert max(service.waits("ok")) < 0.03  # about one answer (4 gaps: 4 callers ahead)
    assert not slots.overloaded


async def test_calls_arriving_faster_than_slots_free_are_refused_after_the_target() -> None:
    # One client at twice what its slots get answered (the bench's open loop at 2R): before,
    # each call the newest-first order passed over waited here until its deadline (refusal
    # p99 1,000 ms with 1 s deadlines); now it fails once it has waited four answers.
    clock = FakeClock()
    slots = CallSlots(4, clock.now)
    service = _Service(slots, clock, gap=0.005, answer_seconds=0.021)
    target = slots.target_seconds
    assert target == pytest.approx(0.084)  # four answers
    calls = []
    for n in range(800):  # two calls per answer, for 2 s on the clock
        calls.append(asyncio.create_task(service.call(f"call{n}")))
        await _settle()
        if n % 2:
            await service.answer()
    assert slots.overloaded
    while slots.waiting or service.in_flight:
        await service.answer()
    await asyncio.gather(*calls)
    refused, served = service.waits("not sent"), service.waits("ok")
    assert len(refused) > 300 and len(served) > 300
    # After the onset (the target plus CoDel's interval, in arrival order), refused within
    # the target and a gap; no refusal at all waited longer than the onset.
    assert refused[int(0.9 * len(refused))] <= target + 0.005 + 1e-6
    assert refused[-1] <= target + INTERVAL_SECONDS + 0.01
    # Newest first meanwhile: most served calls waited one gap at most, not the target.
    assert served[len(served) // 2] <= 0.005 + 1e-6
    # Shedding never left a slot idle while calls waited: every answer had a call to answer.
    assert service.idle_answers == 0
    assert not slots.overloaded  # no call waits any more: oldest first again


@pytest.mark.parametrize(("burst", "refused"), [(25, 0), (40, 9)], ids=["drains", "stands"])
async def test_a_burst_is_refused_only_when_it_stands_longer_than_the_interval(
    burst: int, refused: int
) -> None:
    # CoDel's interval. Answers free a slot every 6 ms; the target is 86 ms. 25 calls at once
    # wait up to 150 ms, the oldest over the target from the 15th answer (90 ms) on, for 60 ms,
    # less than the interval (100 ms): a burst, served whole. 40 stand over it for 102 ms at
    # the 32nd answer (192 ms): overload, and the 9 still waiting fail then.
    clock = FakeClock()
    slots = CallSlots(4, clock.now)
    service = _Service(slots, clock, gap=0.006, answer_seconds=0.0215)
    calls = [asyncio.create_task(service.call(f"call{n}")) for n in range(4 + burst)]
    await _settle()
    while slots.waiting or service.in_flight:
        await service.answer()
    await asyncio.gather(*calls)
    assert len(service.waits("not sent")) == refused


async def test_nothing_is_refused_early_before_two_answers() -> None:
    # A cold client: no estimate of what answers take, so no target (the first answer may
    # carry a TLS handshake and the service's JWKS fetch): its first burst waits.
    clock = FakeClock()
    slots = CallSlots(1, clock.now)
    service = _Service(slots, clock, gap=60.0, answer_seconds=60.0, primed=False)
    calls = [asyncio.create_task(service.call(f"call{n}")) for n in range(10)]
    await _settle()
    await service.answer()  # a minute for the first answer: the other nine waited that long
    assert slots.target_seconds is None
    assert service.waits("not sent") == [] and slots.waiting == 8
    for task in calls:
        task.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


async def test_without_early_refusal_a_passed_over_call_waits_for_its_deadline() -> None:
    # The switch bench/sdk_slots_ab.py compares with: newest first always, nothing shed.
    clock = FakeClock()
    slots = CallSlots(4, clock.now, early_refusal=False)
    service = _Service(slots, clock, gap=0.005, answer_seconds=0.021)
    calls = []
    for n in range(200):
        calls.append(asyncio.create_task(service.call(f"call{n}")))
        await _settle()
        if n % 2:
            await service.answer()
    assert service.waits("not sent") == [] and slots.waiting > 90
    for task in calls:
        task.cancel()
    await asyncio.gather(*calls, return_exceptions=True)
