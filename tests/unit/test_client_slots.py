"""sekisho.client's call slots (slots.py): calls beyond `max_in_flight` wait in the client, newest
first, and one whose deadline would pass before an answer is never sent."""

import asyncio
import contextlib
import time

import pytest
from sekisho.client.errors import ExchangeUnavailableError
from sekisho.client.slots import CallSlots


async def _hold(slots: CallSlots, deadline: float, got: list[str], name: str) -> None:
    async with slots.slot(deadline):
        got.append(name)


async def test_a_freed_slot_goes_to_the_newest_waiting_call() -> None:
    slots, got = CallSlots(1, time.monotonic), []
    deadline = time.monotonic() + 30
    async with slots.slot(deadline):
        older = asyncio.create_task(_hold(slots, deadline, got, "older"))
        await asyncio.sleep(0)
        newer = asyncio.create_task(_hold(slots, deadline, got, "newer"))
        await asyncio.sleep(0)
    await asyncio.gather(older, newer)
    # First in, first out would send the older call first: under overload, the one with the
    # least time left.
    assert got == ["newer", "older"]


async def test_no_slot_before_the_deadline_fails_unsent() -> None:
    slots = CallSlots(1, time.monotonic)
    async with slots.slot(time.monotonic() + 30):
        with pytest.raises(ExchangeUnavailableError, match="not sent") as failed:
            async with slots.slot(time.monotonic() + 0.05):
                raise AssertionError("no slot was free")
    assert failed.value.code == "DEADLINE_EXCEEDED"
    async with slots.slot(time.monotonic() + 30):  # the slot came back
        pass


async def _sent_after_waiting(slots: CallSlots, left: float) -> bool:
    """Whether a call that had to wait for a slot, and got it with about `left` seconds before
    its deadline, is sent."""
    sent: list[str] = []
    async with slots.slot(time.monotonic() + 30):
        waiting = asyncio.create_task(_hold(slots, time.monotonic() + left, sent, "waited"))
        await asyncio.sleep(0.01)
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
    slots = CallSlots(1, time.monotonic)
    slots.answered(5.0)
    assert await _sent_after_waiting(slots, 2.0)  # one answer is no estimate yet
    slots.answered(0.01)
    assert await _sent_after_waiting(slots, 2.0)
    assert slots.typical_seconds == 0.01


async def test_one_slow_answer_among_fast_ones_is_not_what_answers_take() -> None:
    slots = CallSlots(1, time.monotonic)
    for seconds in (0.01, 0.02, 5.0, 0.01, 0.02):
        slots.answered(seconds)
    assert slots.typical_seconds == 0.02
    assert await _sent_after_waiting(slots, 2.0)


async def test_the_estimate_follows_a_lasting_slowdown() -> None:
    # Robust to an outlier, not deaf: once the slow answers are half the window, calls that
    # cannot be answered in time are kept here again.
    slots = CallSlots(1, time.monotonic)
    for _ in range(16):
        slots.answered(0.01)
    for _ in range(8):
        slots.answered(5.0)
    assert slots.typical_seconds == 0.01
    slots.answered(5.0)
    assert slots.typical_seconds == 5.0
    assert not await _sent_after_waiting(slots, 2.0)


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
