"""What the exchange pipeline reports about itself: per-stage latency to metrics, per-stage spans
to tracing, and each exchange's outcome. With both switched off every hook is a shared no-op, so
an uninstrumented exchange pays one attribute check and imports no OpenTelemetry code.
"""

import contextlib
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sekisho.errors import ServiceError
from sekisho.metrics import Metrics

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

EXCHANGE = "exchange"  # the parent span of the stages
GRANTED = "granted"
REFUSED = "refused"
_NO_OP = contextlib.nullcontext()


class _Stage:
    """Times one stage into the histogram and, with tracing on, wraps it in a span."""

    __slots__ = ("_instruments", "_name", "_span", "_started")

    def __init__(self, instruments: "ExchangeInstruments", name: str) -> None:
        self._instruments = instruments
        self._name = name
        self._span: contextlib.AbstractContextManager[Any] | None = None
        self._started = 0.0

    def __enter__(self) -> None:
        instruments = self._instruments
        if instruments.tracer is not None:
            self._span = instruments.tracer.start_as_current_span(self._name)
            self._span.__enter__()
        self._started = instruments.timer()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        metrics = self._instruments.metrics
        if metrics is not None:
            self._record(metrics, self._instruments.timer() - self._started, error)
        if self._span is not None:
            self._span.__exit__(kind, error, traceback)

    def _record(self, metrics: Metrics, seconds: float, error: BaseException | None) -> None:
        metrics.stage_finished(self._name, seconds)


class _Exchange(_Stage):
    """The whole exchange: total latency, outcome by reason, parent span."""

    __slots__ = ("_audience", "_entrypoint")

    def __init__(self, instruments: "ExchangeInstruments", audience: str, entrypoint: str) -> None:
        super().__init__(instruments, EXCHANGE)
        self._audience = audience
        self._entrypoint = entrypoint

    def _record(self, metrics: Metrics, seconds: float, error: BaseException | None) -> None:
        # Anything but a ServiceError is a bug the RPC boundary answers as server_error.
        known = error if isinstance(error, ServiceError) else ServiceError
        metrics.exchange_finished(
            outcome=REFUSED if error is not None else GRANTED,
            reason="" if error is None else known.reason,
            code="" if error is None else known.code,
            audience=self._audience,
            entrypoint=self._entrypoint,
            seconds=seconds,
        )


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

    def exchange(self, audience: str, entrypoint: str) -> contextlib.AbstractContextManager[None]:
        """A context manager around one whole exchange; counts its outcome on exit."""
        if not self.active:
            return _NO_OP
        return _Exchange(self, audience, entrypoint)

    def stage(self, name: str) -> contextlib.AbstractContextManager[None]:
        """A context manager around one stage ("verify", "policy" or "sign")."""
        if not self.active:
            return _NO_OP
        return _Stage(self, name)
