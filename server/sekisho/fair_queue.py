"""Exchanges waiting for a slot, served round-robin at two levels (issue 14).

The outer level is the flow: a caller (its id, or an anonymous caller's connection). Inside a
flow, the waiters of each user (the token an exchange presents: the actor token when there is
one, else the subject token) wait in a FIFO of their own, and the flow's turns go round-robin
across them. A flow flooding the worker only lengthens its own queue: every other flow still
gets one slot in turn. And a user flooding through a shared caller (an Envoy gateway, an agent
runtime serving many users) only lengthens its own FIFO: the caller's other users still get one
of the caller's turns in turn, so a polite user waits behind at most one exchange of each busy
user of its caller, and one of each busy flow, not behind the flood (deficit-free round robin;
every exchange costs about the same).

A flow that arrives with nothing queued is a new flow, and new flows take their first turn
before the backlogged ones (FQ-CoDel's sparse flows, RFC 8290 §4.1-4.2). In plain round robin a
flooding flow took every other slot whenever one polite flow was waiting, so polite callers
whose traffic together came to half the worker's capacity queued behind each other and the
flood (bench/results/polite_session15.md: their wait for a slot was ~5 ms median, 15-27 ms p99,
beside one caller at 5x the capacity). A new flow goes to the back of the round after its first
turn, and so does a flow of the round, even if its queue is then empty; either is forgotten only
when the round reaches it empty, so a flow that refills the moment it is served is not new again:
only a flow that stayed idle for a whole round is, and only while at most max_flows flows are
known (queued or lingering; admission's max_queue): beyond, an arriving flow joins the round, so
a stream of fresh flows (a connection per call) can neither stop the round nor pile up lingering
flows. The waiters queued before a given one are the same or fewer, so the position below is
still never less than theirs; but new flows arriving later go before a waiter of the round too,
which expected_position() estimates from the share of recent turns they took (red team session
15b: beside polite callers taking half the turns, a gateway waited twice its position).

The predicted position sums, over the other flows (and the flow's other users), each one's
queue length capped at a bound: it is computed from counts of queues by length, not by walking
the queues. N waiters make at most sqrt(2N) distinct lengths (45 for the default max_queue of
1,024), so the prediction every arriving call pays for (screen, then admit) no longer grows with
the number of flows or users queued: walking them cost 240-370 us per call with 512-1,024 of
them queued (red team session 12).
"""

import asyncio
import math
from collections import OrderedDict, deque
from dataclasses import dataclass

# The turns the share of new flows is averaged over, and the most of it counted (a waiter of the
# round then expects at most ten times its position).
NEW_SHARE_TURNS = 64
_MAX_NEW_SHARE = 0.9


# eq=False: a waiter is itself, compared by identity. remove() finds it in its user's FIFO (up
# to max_queue_per_caller long) with `in` and deque.remove, which compared every waiter ahead of
# it field by field (dataclass __eq__): a caller cancelling its 512 queued calls newest first
# cost 58-94 ms of event-loop CPU (red team session 12, second pass).
@dataclass(slots=True, eq=False)
class Waiter:
    """One queued exchange: its flow and user, when it queued, its deadline, what wakes it."""

    flow: str
    queued_at: float
    deadline: float
    future: asyncio.Future[None]
    granted_at: float = 0.0
    user: str = ""


class _Lengths:
    """How many queues have each length (0 not counted): `capped_sum(k)` is the sum over the
    queues of min(length, k), in one step per distinct length."""

    __slots__ = ("_count",)

    def __init__(self) -> None:
        self._count: dict[int, int] = {}

    def moved(self, before: int, after: int) -> None:
        """One queue's length changed from `before` to `after`."""
        count = self._count
        if before:
            left = count[before] - 1
            if left:
                count[before] = left
            else:
                del count[before]
        if after:
            count[after] = count.get(after, 0) + 1

    def capped_sum(self, cap: int) -> int:
        return sum(count * min(length, cap) for length, count in self._count.items())


class _Flow:
    """One flow's waiters: a FIFO per user, the users in round-robin order (next first)."""

    __slots__ = ("length", "served", "user_lengths", "users")

    def __init__(self) -> None:
        self.users: OrderedDict[str, deque[Waiter]] = OrderedDict()
        self.user_lengths = _Lengths()
        self.length = 0
        self.served = False  # had a turn: lingers in the round when empty

    def turns_before(self, user: str | None) -> int:
        """This flow's turns taken before one more waiter of `user` is served: all of that
        user's waiters, plus up to as many again (and one) of every other user's. None: a user
        with nothing queued (the least any user of the flow can wait)."""
        own = len(self.users.get(user, ())) if user is not None else 0
        # Every user's min(length, own + 1), less the user's own (own, when it has waiters).
        return own + self.user_lengths.capped_sum(own + 1) - own


class FairQueue:
    """Per-flow, then per-user, FIFOs: new flows first, then the round of the others."""

    def __init__(self, max_flows: int = 1024) -> None:
        # A flow is new only while at most max_flows are known (queued or lingering); beyond, it
        # joins the round. A stream of fresh flows (an anonymous caller opening a connection per
        # call) kept the round from turning and piled up lingering flows (red team session 15b).
        self._max_flows = max_flows
        # flow → its waiters. Not an LruMap: this is a queue, not a cache. Nothing is ever
        # evicted (a full queue refuses, admission.py); a flow is forgotten when the round
        # reaches it empty, when its last waiter is removed before its first turn, or when
        # nothing is queued at all.
        self._flows: dict[str, _Flow] = {}
        # Turn orders (keys of _flows): new flows, served first in arrival order, then the
        # round; a flow in the round moves to its back when served.
        self._new: OrderedDict[str, None] = OrderedDict()
        self._round: OrderedDict[str, None] = OrderedDict()
        self._flow_lengths = _Lengths()
        self._length = 0
        # The share of recent turns new flows took (a moving average over ~NEW_SHARE_TURNS).
        self._new_share = 0.0

    def __len__(self) -> int:
        return self._length

    def flow_length(self, flow: str) -> int:
        entry = self._flows.get(flow)
        return entry.length if entry else 0

    def position(self, flow: str, user: str | None = None) -> int:
        """Waiters served before one more joining `flow` as `user`, round-robin: the flow's own
        turns before it (its user's waiters, and up to as many again and one of each other
        user's), plus up to that many turns and one of every other flow. `user` None: the
        position of a user with nothing queued, a lower bound for any user of the flow. An
        upper bound of the waiters queued now that go first (a new flow takes one turn ahead,
        then waits its turn in the round, behind the flows already there); new flows arriving
        later go first too, which expected_position() adds."""
        entry = self._flows.get(flow)
        own = entry.turns_before(user) if entry else 0
        # Every flow's min(length, own + 1), less this flow's own.
        others = self._flow_lengths.capped_sum(own + 1) - min(entry.length if entry else 0, own + 1)
        return own + others

    def expected_position(self, flow: str, user: str | None = None) -> int:
        """position(), stretched by the new flows expected to go ahead meanwhile: for a waiter
        that will wait in the round, at the share of recent turns new flows took (new flows
        arriving after it still go first: beside polite callers taking half the turns, a
        backlogged gateway waited twice its position, then was refused as overstayed; red team
        session 15b). An estimate, no longer a bound; a waiter that will be a new flow's first
        waits behind the new flows already queued only, and its position is unchanged."""
        position = self.position(flow, user)
        if flow not in self._flows and len(self._flows) < self._max_flows:
            return position
        share = min(self._new_share, _MAX_NEW_SHARE)
        return position + math.ceil(position * share / (1 - share))

    def push(self, waiter: Waiter) -> None:
        entry = self._flows.get(waiter.flow)
        if entry is None:
            entry = self._flows[waiter.flow] = _Flow()
            turns = self._new if len(self._flows) <= self._max_flows else self._round
            turns[waiter.flow] = None
        queue = entry.users.get(waiter.user)
        if queue is None:
            queue = entry.users[waiter.user] = deque()
        queue.append(waiter)
        entry.user_lengths.moved(len(queue) - 1, len(queue))
        self._flow_lengths.moved(entry.length, entry.length + 1)
        entry.length += 1
        self._length += 1

    def pop(self) -> Waiter | None:
        """The next flow's next user's oldest waiter (the first new flow's, else the round's
        next one's); that user, then that flow, go to the back of their turns."""
        if not self._length:
            # Nothing waits: every flow is empty, lingering in the round. None to starve.
            self._flows.clear()
            self._new.clear()
            self._round.clear()
            return None
        while True:
            if self._new:
                flow, _ = self._new.popitem(last=False)
                entry = self._flows[flow]
                self._new_share += (1 - self._new_share) / NEW_SHARE_TURNS
                break
            flow = next(iter(self._round))
            entry = self._flows[flow]
            if entry.length:
                self._new_share -= self._new_share / NEW_SHARE_TURNS
                break
            del self._round[flow], self._flows[flow]  # empty for a whole round: forgotten
        entry.served = True
        user, queue = next(iter(entry.users.items()))
        waiter = queue.popleft()
        entry.user_lengths.moved(len(queue) + 1, len(queue))
        self._flow_lengths.moved(entry.length, entry.length - 1)
        entry.length -= 1
        self._length -= 1
        if queue:
            entry.users.move_to_end(user)
        else:
            del entry.users[user]
        # To the back of the round, empty or not. A flow in the round forgotten as its last
        # waiter was served was new at its next call: one call at a time got a round turn and
        # a new turn per round, twice a backlogged flow's share (red team session 15b).
        self._round[flow] = None
        self._round.move_to_end(flow)
        return waiter

    def remove(self, waiter: Waiter) -> None:
        """Take out a waiter whose caller gave up (cancelled)."""
        entry = self._flows.get(waiter.flow)
        queue = entry.users.get(waiter.user) if entry else None
        if entry is None or queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        entry.user_lengths.moved(len(queue) + 1, len(queue))
        self._flow_lengths.moved(entry.length, entry.length - 1)
        entry.length -= 1
        self._length -= 1
        if not queue:
            del entry.users[waiter.user]
        if not entry.length and not entry.served:
            # Not served yet: forgotten, and arriving again it queues at the back. A flow that
            # had its turn stays in the round, empty, until the round reaches it: forgotten
            # here, a caller that sent, cancelled and resent after each turn was new every time
            # and took every turn before the backlogged flows (red team session 15b).
            del self._flows[waiter.flow]
            self._new.pop(waiter.flow, None)
            self._round.pop(waiter.flow, None)
