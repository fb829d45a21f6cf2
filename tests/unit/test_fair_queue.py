"""The two-level round robin (fair_queue.py): the order waiters are served in, and the position
it predicts for the next one, which admission turns into a predicted wait (it must never be
less than the real one: a refusal for a wait over the target is then never a wait that fits)."""

import asyncio
from collections import Counter, OrderedDict
from typing import Any

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


def _walked_position(queued: list[Waiter], flow: str, user: str | None) -> int:
    """The prediction by walking every queued waiter (fair_queue.py before session 12's
    change): the reference."""
    flows = Counter(w.flow for w in queued)
    users = Counter((w.flow, w.user) for w in queued)
    own_user = users[(flow, user)] if user is not None else 0
    own = own_user + sum(
        min(n, own_user + 1) for (f, u), n in users.items() if f == flow and u != user
    )
    return own + sum(min(n, own + 1) for f, n in flows.items() if f != flow)


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("push"), KEYS),
        st.tuples(st.just("pop"), st.just(("", ""))),
        st.tuples(st.just("remove"), st.integers(0, 30)),
    ),
    max_size=60,
)


@settings(max_examples=300)
@given(OPS, KEYS, st.booleans())
def test_the_position_from_counts_of_lengths_is_the_walked_one(
    ops: list[tuple[str, Any]], joining: tuple[str, str], unknown_user: bool
) -> None:
    """After any pushes, pops and removals, the position computed from counts of queue lengths
    equals the one computed by walking every flow and user (red team session 12: the walk cost
    240-370 us per arriving call with 512-1,024 flows or users queued)."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        pushed: list[Waiter] = []
        queued: list[Waiter] = []
        for op, arg in ops:
            if op == "push":
                pushed.append(_waiter(loop, *arg))
                queue.push(pushed[-1])
                queued.append(pushed[-1])
            elif op == "pop":
                if (served := queue.pop()) is not None:
                    queued.remove(served)
            elif pushed:
                gone = pushed[arg % len(pushed)]
                queue.remove(gone)
                if gone in queued:
                    queued.remove(gone)
        flow, user = joining
        asked = None if unknown_user else user
        assert queue.position(flow, asked) == _walked_position(queued, flow, asked)
        assert queue.position("unseen", None) == _walked_position(queued, "unseen", None)
    finally:
        loop.close()


def test_the_position_does_not_walk_the_flows_or_users_queued() -> None:
    """1,000 flows and 500 users of one flow queued: the prediction reads counts of lengths
    (at most sqrt(2N) of them), never the queues themselves."""

    class Unwalkable(OrderedDict[str, Any]):
        def items(self) -> Any:
            raise AssertionError("position() walked the queues")

        def __iter__(self) -> Any:
            raise AssertionError("position() walked the queues")

    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        for i in range(1000):
            queue.push(_waiter(loop, f"conn-{i}", "t"))
        for i in range(500):
            queue.push(_waiter(loop, "gw", f"token-{i}"))
        flows = queue._flows
        for entry in flows.values():
            entry.users = Unwalkable(entry.users)
        queue._flows = Unwalkable(flows)
        assert queue.position("gw", "token-new") == 500 + 1000
        assert queue.position("conn-new", None) == 1001
    finally:
        loop.close()


def test_removing_a_waiter_compares_no_other_waiter_by_value() -> None:
    """Red team session 12, second pass: remove() looked the waiter up in its user's FIFO with
    `in` and deque.remove, which compared each waiter ahead of it field by field (dataclass
    __eq__, down to the future): a caller cancelling its 512 queued calls newest first cost
    58-94 ms of event-loop CPU. A waiter is compared by identity only."""

    class Counted(asyncio.Future[None]):
        compared = 0

        def __eq__(self, other: object) -> bool:
            Counted.compared += 1
            return self is other

        __hash__ = asyncio.Future.__hash__

    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        waiters = [Waiter("caller", 1.0, 2.0, Counted(loop=loop), user="u") for _ in range(100)]
        for waiter in waiters:
            queue.push(waiter)
        for waiter in reversed(waiters):  # newest first: each is behind all the others
            queue.remove(waiter)
        assert len(queue) == 0
        assert Counted.compared == 0
    finally:
        loop.close()


def test_a_new_flow_takes_its_first_turn_before_a_backlogged_flood() -> None:
    """A flow arriving with nothing queued goes before the round's backlogged flows (FQ-CoDel's
    sparse flows): a polite caller waits behind at most the new flows, not a turn of the flood.
    A flow that refills the moment it was served is not new again: it waits its turn."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        flood = [_waiter(loop, "flood", "u") for _ in range(5)]
        for waiter in flood:
            queue.push(waiter)
        assert queue.pop() is flood[0]
        polite = _waiter(loop, "polite", "p")
        queue.push(polite)
        assert queue.position("polite", "p") >= 0
        assert queue.pop() is polite  # round robin alone served flood[1] first
        again = _waiter(loop, "polite", "p")
        queue.push(again)  # at once: still in the round (empty), so not new
        assert [queue.pop(), queue.pop()] == [flood[1], again]
        assert [queue.pop(), queue.pop(), queue.pop(), queue.pop()] == [*flood[2:], None]
        # Idle for a whole round (the round reached it empty): new again.
        queue.push(flood_waiter := _waiter(loop, "flood", "u"))
        queue.push(_waiter(loop, "flood", "u"))
        assert queue.pop() is flood_waiter
        queue.push(late := _waiter(loop, "polite", "p"))
        assert queue.pop() is late
    finally:
        loop.close()


@settings(max_examples=300)
@given(OPS)
def test_every_queued_waiter_is_served_once_whatever_the_order(ops: list[Any]) -> None:
    """Pushes, pops and removals in any order: each waiter pushed and not removed is served
    exactly once, the counts stay right, and a drained queue holds no flow."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        live: list[Waiter] = []
        served: list[Waiter] = []
        for op, arg in ops:
            if op == "push":
                live.append(waiter := _waiter(loop, *arg))
                queue.push(waiter)
            elif op == "pop":
                if (waiter := queue.pop()) is not None:
                    live.remove(waiter)
                    served.append(waiter)
            elif live:
                queue.remove(gone := live[arg % len(live)])
                live.remove(gone)
            assert len(queue) == len(live)
        rest = _drain(queue)
        assert sorted(map(id, rest)) == sorted(map(id, live))
        assert len(set(map(id, served + rest))) == len(served) + len(rest)
        assert queue.pop() is None and not queue._flows
    finally:
        loop.close()


def _backlogged_share(queue: FairQueue, loop: asyncio.AbstractEventLoop, act: Any) -> Counter[str]:
    """200 turns with flows "b" and "c" always backlogged; `act(waiter)` runs after each turn
    (the flow under test pushing and removing its waiters). Turns served, by flow."""
    served: Counter[str] = Counter()
    act(None)
    for _ in range(200):
        for flow in "bc":
            while queue.flow_length(flow) < 5:
                queue.push(_waiter(loop, flow, "u"))
        waiter = queue.pop()
        assert waiter is not None
        served[waiter.flow] += 1
        act(waiter)
    return served


def test_cancelling_and_resending_does_not_make_a_flow_new_again() -> None:
    """Red team session 15b: remove() forgot a flow as its last waiter left, so a caller that,
    after each turn, sent a call, cancelled it and sent another was a new flow every time and
    went before every backlogged flow: 198 of 200 turns, the backlogged callers 1 each (their
    calls then overstayed). A flow that had its turn stays in the round until the round reaches
    it empty, whatever was removed meanwhile."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()

        def cancel_and_resend(served: Waiter | None) -> None:
            if served is None or served.flow == "a":
                queue.push(cancelled := _waiter(loop, "a", "u"))
                queue.remove(cancelled)
                queue.push(_waiter(loop, "a", "u"))

        served = _backlogged_share(queue, loop, cancel_and_resend)
        assert served["a"] <= served["b"] + 1, served
    finally:
        loop.close()


def test_a_flow_that_refills_as_its_last_waiter_is_served_is_not_new_again() -> None:
    """Red team session 15b: a flow in the round whose last waiter was served was forgotten at
    once, so a caller with one call at a time (resent as each is answered) was new every other
    turn: its round turn, then a new turn, twice the turns of each backlogged flow (100 of 200
    against 50 and 50). It goes to the back of the round, empty, and is new again only when
    the round reaches it still empty (FQ-CoDel's old flows, RFC 8290 §4.2)."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()

        def one_at_a_time(served: Waiter | None) -> None:
            if served is None or served.flow == "a":
                queue.push(_waiter(loop, "a", "u"))

        served = _backlogged_share(queue, loop, one_at_a_time)
        assert served["a"] <= served["b"] + 1, served
    finally:
        loop.close()


def test_a_stream_of_fresh_flows_neither_piles_up_lingering_flows_nor_stops_the_round() -> None:
    """Red team session 15b: a fresh flow per turn (an anonymous caller opening a connection
    per call) was new every time, so the round never turned: the backlogged flow got 1 turn
    of 20,000, and each served flow lingered in the round (~830 bytes), 20,000 of them, all
    walked by the one pop that finally reached them (100,000: 59 ms of event loop). A flow is
    new only while at most max_flows flows are known; beyond, it joins the round: here at most
    247 known and the backlogged flow served 215 times, as plain round robin would."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue(max_flows=64)
        served: Counter[str] = Counter()
        most_known = 0
        for turn in range(20_000):
            while queue.flow_length("gateway") < 5:
                queue.push(_waiter(loop, "gateway", "u"))
            if len(queue) < 128:  # admission's max_queue
                queue.push(_waiter(loop, f"conn-{turn}", "t"))
            waiter = queue.pop()
            assert waiter is not None
            served["gateway" if waiter.flow == "gateway" else "conn"] += 1
            most_known = max(most_known, len(queue._flows))
        assert most_known <= 128 + 2 * 64, most_known
        assert served["gateway"] >= 20_000 / 128, served
    finally:
        loop.close()


def test_the_expected_position_counts_the_new_flows_that_will_go_ahead() -> None:
    """Red team session 15b: new flows arriving after a waiter of the round still go before it,
    so beside polite callers taking half the turns a backlogged gateway's calls waited about
    twice the position predicted for them (median 2.1x, 499 of 500 over it): accepted for a
    wait that fit, then refused at dequeue as overstayed. The expected position stretches the
    position by the share of recent turns that went to new flows."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue()
        predicted: dict[int, tuple[int, int]] = {}
        ratios: list[float] = []
        for turn in range(2_000):
            for flood in ("f1", "f2", "f3"):
                while queue.flow_length(flood) < 20:
                    queue.push(_waiter(loop, flood, "u"))
            if queue.flow_length("gw") < 3:
                gateway = _waiter(loop, "gw", f"user-{turn % 5}")
                predicted[id(gateway)] = (queue.expected_position("gw", gateway.user), turn)
                queue.push(gateway)
            if turn % 2:
                queue.push(_waiter(loop, f"polite-{turn}", "p"))
            waiter = queue.pop()
            assert waiter is not None
            if waiter.flow == "gw":
                position, pushed = predicted.pop(id(waiter))
                if turn > 500:  # the share is measured by then
                    ratios.append((turn - pushed) / max(1, position))
        ratios.sort()
        assert ratios[len(ratios) // 2] <= 1.1, ratios[len(ratios) // 2]
        assert ratios[-1] <= 1.5, ratios[-1]
    finally:
        loop.close()


def test_a_flow_cancelled_before_its_first_turn_is_forgotten_beyond_the_cap_too() -> None:
    """A flow beyond max_flows joins the round; one whose calls are all cancelled before its
    first turn had nothing to linger for: kept, a stream of connections each sending and
    cancelling one call left an empty flow in the round per call, not per turn."""
    loop = asyncio.new_event_loop()
    try:
        queue = FairQueue(max_flows=4)
        for flow in ("a", "b", "c", "d"):
            queue.push(_waiter(loop, flow, "u"))
        for i in range(1_000):
            queue.push(gone := _waiter(loop, f"conn-{i}", "t"))
            queue.remove(gone)
        assert len(queue._flows) == 4
    finally:
        loop.close()
