"""The two-level round robin (fair_queue.py): the order waiters are served in, and the position
it predicts for the next one, which admission turns into a predicted wait (it must never be
less than the real one: a refusal for a wait over the target is then never a wait that fits)."""

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from sekisho.fair_queue import FairQueue, Waiter

KEYS = st.tuples(st.sampled_from("abc"), st.sampled_from("xyz"))


def _waiter(loop: asyncio.AbstractEventLoop, flow: str, user: str) -> Waiter:
    return Waiter(flow, 0.0, 0.0, loop.create_future(), user=user)


def _drain(queue: FairQueue) -> list[Waiter]:
    served = []
    while (waiter := queue.pop()) is not None:
        served.append(waiter)
    return served


def test_turns_alternate_across_flows_then_across_users_of_a_flow() -> None:
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        for flow, user in [("gw", "m")] * 4 + [("gw", "a"), ("agent", ""), ("gw", "b")]:
            queue.push(_waiter(loop, flow, user))
        served = [(w.flow, w.user) for w in _drain(queue)]
        assert served == [
            ("gw", "m"), ("agent", ""), ("gw", "a"), ("gw", "b"), ("gw", "m"), ("gw", "m"),
            ("gw", "m"),
        ]  # fmt: skip
        assert len(queue) == 0 and queue.flow_length("gw") == 0
    finally:
        loop.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(KEYS, max_size=30), KEYS, st.booleans())
def test_the_predicted_position_is_never_less_than_the_real_one(
    queued: list[tuple[str, str]], joining: tuple[str, str], unknown_user: bool
) -> None:
    """position(flow, user) ≥ the waiters really served before one more of (flow, user); and
    with the user unknown (None) it is at most any user's, the screen's lower bound."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        for flow, user in queued:
            queue.push(_waiter(loop, flow, user))
        flow, user = joining
        predicted = queue.position(flow, user)
        assert queue.position(flow, None) <= predicted
        if unknown_user:
            assert queue.position(flow, None) <= queue.position(flow, "never-seen")
        newcomer = _waiter(loop, flow, user)
        queue.push(newcomer)
        served = _drain(queue)
        assert served.index(newcomer) <= predicted
        if not any(f == flow for f, _ in queued):  # a new flow is served exactly that late
            assert served.index(newcomer) == predicted
    finally:
        loop.close()


def test_a_removed_waiter_leaves_no_empty_turn() -> None:
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        gone, kept = _waiter(loop, "gw", "a"), _waiter(loop, "gw", "b")
        queue.push(gone)
        queue.push(kept)
        queue.remove(gone)
        queue.remove(gone)  # twice: nothing
        assert len(queue) == 1 and queue.flow_length("gw") == 1
        assert queue.position("gw", "a") == 1  # behind b only
        assert queue.pop() is kept and queue.pop() is None
    finally:
        loop.close()
