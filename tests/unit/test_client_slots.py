"""sekisho.client's call slots (slots.py): calls beyond `max_in_flight` wait in the client, newest
first, and one whose deadline would pass before an answer is never sent."""

import asyncio
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


async def test_a_call_that_waited_too_long_for_an_answer_in_time_is_not_sent() -> None:
    slots, sent = CallSlots(1, time.monotonic), []
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
