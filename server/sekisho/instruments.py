"""What the exchange pipeline reports about itself: per-stage latency to metrics, per-stage spans
to tracing, and each exchange's outcome. With both switched off every hook is a shared no-op, so
an uninstrumented exchange pays one attribute check and imports no OpenTelemetry code.

An exchange is one scope (`ExchangeInstruments.exchange`): its stages (`scope.stage(name)`) are
timed into the scope, and the scope records the outcome, the total and every stage time with one
`Metrics.exchange_finished` call (`exchange_granted` for a grant) as it exits — one count and one
lock per exchange, not one per stage (bench/results/observability_session7.md). A stage's time is
therefore in the metrics from the end of its exchange, not from the end of the stage.
"""

import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from sekisho.errors import ServiceError
from sekisho.metrics import Metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

EXCHANGE = "exchange"  # the parent span of the stages
REFUSED = "refused"
_NO_OP = contextlib.nullcontext()


class ExchangeScope(Protocol):
    """One exchange's instruments, as `TokenExchanger` sees them."""

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A context manager around one stage ("verify", "policy" or "sign"), entered at once;
        stages run one after another."""
        ...


class _Untimed:
    """Metrics and tracing both off: the scope, and every stage, is the same no-op."""

    def __enter__(self) -> "_Untimed":
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        return _NO_OP


_UNTIMED = _Untimed()


class _StageTimer:
    """Times the stages of one exchange, one after another, into `times`: `name` is set, then the
    timer entered (`_Timed.stage`)."""

    __slots__ = ("_started", "_timer", "name", "times")

    def __init__(self, timer: Callable[[], float]) -> None:
        self._timer = timer
        self._started = 0.0
        self.name = ""
        self.times: list[tuple[str, float]] = []

    def __enter__(self) -> None:
        self._started = self._timer()

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        # A stage that raised is timed too: its time is part of the refused exchange's.
        self.times.append((self.name, self._timer() - self._started))


class _Timed:
    """One exchange: its stage times, outcome and total latency to `metrics` (when not None)."""

    __slots__ = ("_audience", "_entrypoint", "_metrics", "_started", "_timer", "stages")

    def __init__(
        self,
        metrics: Metrics | None,
        timer: Callable[[], float],
        audience: str,
        entrypoint: str,
    ) -> None:
        self._metrics = metrics
        self._timer = timer
        self._audience = audience
        self._entrypoint = entrypoint
        self._started = 0.0
        self.stages = _StageTimer(timer)

    def __enter__(self) -> "_Timed":
        self._started = self._timer()
        return self

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        stages = self.stages
        stages.name = name
        return stages

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        seconds = self._timer() - self._started
        metrics = self._metrics
        if metrics is None:
            return
        if error is None:
            metrics.exchange_granted(self._audience, self._entrypoint, seconds, self.stages.times)
            return
        # Anything but a ServiceError is a bug the RPC boundary answers as server_error.
        known = error if isinstance(error, ServiceError) else ServiceError
        metrics.exchange_finished(
            outcome=REFUSED,
            reason=known.reason,
            code=known.code,
            audience=self._audience,
            entrypoint=self._entrypoint,
            seconds=seconds,
            stages=self.stages.times,
        )


class _TracedStage:
    """One stage in a span of its own, timed into its exchange's stage times."""

    __slots__ = ("_name", "_scope", "_span", "_started")

    def __init__(self, scope: "_Traced", name: str) -> None:
        self._scope = scope
        self._name = name
        self._span: contextlib.AbstractContextManager[Any] | None = None
        self._started = 0.0

    def __enter__(self) -> None:
        self._span = self._scope.tracer.start_as_current_span(self._name)
        self._span.__enter__()
        self._started = self._scope.timer()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._scope.stages.times.append((self._name, self._scope.timer() - self._started))
        if self._span is not None:
            self._span.__exit__(kind, error, traceback)


class _Traced(_Timed):
    """One exchange with tracing on: a parent span and a span per stage, besides `_Timed`'s."""

    __slots__ = ("_span", "timer", "tracer")

    def __init__(
        self,
        metrics: Metrics | None,
        tracer: "Tracer",
        timer: Callable[[], float],
        audience: str,
        entrypoint: str,
    ) -> None:
        super().__init__(metrics, timer, audience, entrypoint)
        self.tracer = tracer
        self.timer = timer
        self._span: contextlib.AbstractContextManager[Any] | None = None

    def __enter__(self) -> "_Traced":
        self._span = self.tracer.start_as_current_span(EXCHANGE)
        self._span.__enter__()
        super().__enter__()
        return self

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        return _TracedStage(self, name)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        super().__exit__(kind, error, traceback)
        if self._span is not None:
            self._span.__exit__(kind, error, traceback)


class ExchangeInstruments:
    """Metrics and tracing for `TokenExchanger`; either may be None (switched off).

    `timer` is a monotonic clock for latency only (token validity uses the injected Clock).
    """

    def __init__(
        self,
        metrics: Metrics | None = None,
        tracer: "Tracer | None" = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.timer = timer
        self.active = metrics is not None or tracer is not None

    def exchange(
        self, audience: str, entrypoint: str
    ) -> contextlib.AbstractContextManager[ExchangeScope]:
        """A context manager around one whole exchange, giving its scope; counts its outcome,
        total and stage times on exit."""
        if self.tracer is not None:
            return _Traced(self.metrics, self.tracer, self.timer, audience, entrypoint)
        if self.metrics is not None:
            return _Timed(self.metrics, self.timer, audience, entrypoint)
        return _UNTIMED
