"""Exchanges waiting for a slot: one FIFO per flow (a caller), served round-robin (issue 14).

A flow flooding the worker only lengthens its own queue: every other flow still gets one slot
in turn, so a polite caller waits behind at most one exchange of each busy flow, not behind the
flood (deficit-free round robin; every exchange costs about the same).
"""

import asyncio
from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(slots=True)
class Waiter:
    """One queued exchange: its flow, when it queued, its deadline, and what wakes it."""

    flow: str
    queued_at: float
    deadline: float
    future: asyncio.Future[None]
    granted_at: float = 0.0


class FairQueue:
    """Per-flow FIFOs in round-robin order."""

    def __init__(self) -> None:
        # flow → its waiters; order = the round-robin turn (next flow served first). Not an
        # LruMap: this is a queue, not a cache. Nothing is ever evicted (a full queue refuses,
        # admission.py), and a flow moves to the back when served, not when looked at.
        self._flows: OrderedDict[str, deque[Waiter]] = OrderedDict()
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def flow_length(self, flow: str) -> int:
        queue = self._flows.get(flow)
        return len(queue) if queue else 0

    def position(self, flow: str) -> int:
        """Waiters served before one more joining `flow`, round-robin: all of its own flow,
        plus up to as many again (and one) from every other flow."""
        own = self.flow_length(flow)
        return own + sum(min(len(q), own + 1) for name, q in self._flows.items() if name != flow)

    def push(self, waiter: Waiter) -> None:
        queue = self._flows.get(waiter.flow)
        if queue is None:
            queue = self._flows[waiter.flow] = deque()
        queue.append(waiter)
        self._length += 1

    def pop(self) -> Waiter | None:
        """The next flow's oldest waiter; that flow then goes to the back of the turn."""
        if not self._flows:
            return None
        flow, queue = next(iter(self._flows.items()))
        waiter = queue.popleft()
        self._length -= 1
        if queue:
            self._flows.move_to_end(flow)
        else:
            del self._flows[flow]
        return waiter

    def remove(self, waiter: Waiter) -> None:
        """Take out a waiter whose caller gave up (cancelled)."""
        queue = self._flows.get(waiter.flow)
        if queue is None or waiter not in queue:
            return
        queue.remove(waiter)
        self._length -= 1
        if not queue:
            del self._flows[waiter.flow]
