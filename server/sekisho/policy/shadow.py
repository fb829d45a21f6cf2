"""Shadow policy (`[policy.shadow]`): a candidate policy evaluated beside the live one on every
decision, off the hot path, whose decision never reaches a token (docs/policy-authors.md).

The exchange only enqueues the input and the live decision (`offer`, O(1)); one background task
evaluates the shadow engine on them and compares (difference.py). Bounds, so the shadow can only
ever cost the live path a little:
- a bounded queue; when it is full the new decision is not shadowed (counted as dropped);
- after each evaluation taking d seconds the task pauses d x (1 - cpu_share) / cpu_share, so
  the shadow takes at most `cpu_share` of the event loop and under load it is dropped first;
- each evaluation is bounded by `timeout_seconds` (an engine that awaits, such as OPA over HTTP,
  is abandoned then; an in-process engine runs to completion, once, between live requests).
A shadow error or timeout is a difference of kind `error`; nothing the shadow does can raise into
the exchange. A difference is logged as a `shadow_diff` event (subject as identifiers.subject_hash,
never the input) and counted by audience and kind.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sekisho.identifiers import subject_hash
from sekisho.models import Decision
from sekisho.policy.difference import differences, effective_scopes
from sekisho.policy.engine import PolicyEngine
from sekisho.policy.tap import ObservedDecision

log = logging.getLogger("sekisho.shadow")


@dataclass(frozen=True, slots=True)
class ShadowBounds:
    """[policy.shadow] queue_size, timeout_seconds and cpu_share (defaults: ShadowConfig)."""

    queue_size: int
    timeout_seconds: float
    cpu_share: float


class ShadowCounters:
    """What the shadow did, for tests and metrics: evaluations by outcome and diffs by kind."""

    def __init__(
        self,
        on_outcome: Callable[[str], None] = lambda outcome: None,
        on_difference: Callable[[str, str, bool], None] = lambda audience, kind, granted: None,
    ) -> None:
        self.outcomes: dict[str, int] = {}
        self.kinds: dict[str, int] = {}
        self._on_outcome = on_outcome
        self._on_difference = on_difference

    def outcome(self, outcome: str) -> None:
        """`same`, `different` (incl. errors), or `dropped`."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self._on_outcome(outcome)

    def difference(self, audience: str, kind: str, *, granted: bool) -> None:
        """`granted`: the live or the shadow policy granted `audience` (so it may be a label)."""
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self._on_difference(audience, kind, granted)


class ShadowEvaluator:
    """DecisionObserver that evaluates a shadow engine on each live decision, in the background."""

    def __init__(
        self, engine: PolicyEngine, bounds: ShadowBounds, counters: ShadowCounters | None = None
    ) -> None:
        self._engine = engine
        self._bounds = bounds
        self._queue: asyncio.Queue[ObservedDecision] = asyncio.Queue(bounds.queue_size)
        self.counters = counters or ShadowCounters()
        self._task: asyncio.Task[None] | None = None

    def offer(self, observed: ObservedDecision) -> None:
        if observed.decision is None:
            return  # the live engine could not answer: nothing to compare against
        try:
            self._queue.put_nowait(observed)
        except asyncio.QueueFull:
            self.counters.outcome("dropped")

    def start(self) -> None:
        """Start the background task (on the running loop)."""
        self._task = asyncio.create_task(self._run())

    async def drained(self) -> None:
        """Wait until every queued decision has been shadowed (tests, bench)."""
        await self._queue.join()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            observed = await self._queue.get()
            started = time.perf_counter()
            try:
                await self._shadow(observed)
            except Exception:  # a background loop: log, count, go on
                log.exception("shadow_evaluation_crashed")
            finally:
                self._queue.task_done()
            spent = time.perf_counter() - started
            share = self._bounds.cpu_share
            await asyncio.sleep(spent * (1 - share) / share)

    async def _shadow(self, observed: ObservedDecision) -> None:
        live = observed.decision
        assert live is not None
        candidate = await self._candidate(observed.document)
        requested = observed.document["request"]["scopes"]
        kinds = differences(live, candidate, requested)
        if not kinds:
            self.counters.outcome("same")
            return
        self.counters.outcome("different")
        audience = observed.document["request"]["audience"]
        # A candidate that opens a downstream the live policy denies is what shadow is for: an
        # audience either policy granted is named, not counted as "unknown" (AudienceLabels).
        granted = live.allow or (candidate is not None and candidate.allow)
        for kind in kinds:
            self.counters.difference(audience, kind, granted=granted)
        log.info("shadow_diff", extra=_diff_fields(observed.document, live, candidate, kinds))

    async def _candidate(self, document: dict[str, Any]) -> Decision | None:
        try:
            return await asyncio.wait_for(
                self._engine.decide(document), self._bounds.timeout_seconds
            )
        except TimeoutError:
            log.warning("shadow_timeout", extra={"timeout_seconds": self._bounds.timeout_seconds})
        except Exception as exc:  # any failure of the shadow is a difference, never an outage
            log.warning("shadow_error", extra={"error": f"{type(exc).__name__}: {exc}"})
        return None


def _summary(decision: Decision | None, requested: list[str]) -> dict[str, Any]:
    if decision is None:
        return {"error": "shadow evaluation failed"}
    return {
        "allow": decision.allow,
        "scopes": sorted(effective_scopes(decision, requested)),
        "error": decision.error,
        "ttl_seconds": decision.ttl_seconds,
        "reason": decision.reason,
    }


def _diff_fields(
    document: dict[str, Any], live: Decision, shadow: Decision | None, kinds: tuple[str, ...]
) -> dict[str, Any]:
    subject, request = document["subject"], document["request"]
    return {
        "decision_id": live.decision_id,
        "audience": request["audience"],
        "kinds": list(kinds),
        "iss": subject["iss"],
        "sub_hash": subject_hash(subject["iss"], subject["sub"]),
        "live": _summary(live, request["scopes"]),
        "shadow": _summary(shadow, request["scopes"]),
    }
