"""A PolicyEngine that hands every decision it passes on to observers (the decision log, the
shadow evaluator) without waiting for them: an observer only enqueues, never blocks or raises.

It wraps whatever the engine factory built (behind the decision cache), so it sees exactly the
input and decision of every exchange, cached or not, with any engine.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sekisho.clock import Clock
from sekisho.errors import ServiceError
from sekisho.models import Decision
from sekisho.policy.engine import PolicyEngine


@dataclass(frozen=True, slots=True)
class ObservedDecision:
    """One decision as the exchange saw it: the input, and the decision or the engine's error."""

    document: dict[str, Any]
    decision: Decision | None
    error: ServiceError | None
    timestamp: float
    elapsed_ns: int


class DecisionObserver(Protocol):
    """Takes an observed decision for later processing; must return at once and never raise."""

    def offer(self, observed: ObservedDecision) -> None: ...


class ObservedPolicyEngine:
    """PolicyEngine that reports each decision (or engine error) to its observers."""

    def __init__(
        self, engine: PolicyEngine, clock: Clock, observers: Sequence[DecisionObserver]
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._observers = tuple(observers)

    @property
    def ready(self) -> bool:
        return self._engine.ready

    async def decide(self, document: dict[str, Any]) -> Decision:
        """Raises: TemporarilyUnavailableError when the engine cannot answer (also observed)."""
        started = time.perf_counter_ns()
        try:
            decision = await self._engine.decide(document)
        except ServiceError as error:
            self._report(document, None, error, started)
            raise
        self._report(document, decision, None, started)
        return decision

    def _report(
        self,
        document: dict[str, Any],
        decision: Decision | None,
        error: ServiceError | None,
        started: int,
    ) -> None:
        elapsed = time.perf_counter_ns() - started
        observed = ObservedDecision(document, decision, error, self._clock.now(), elapsed)
        for observer in self._observers:
            observer.offer(observed)
