"""Builds what the service reports about itself from [metrics] and [tracing]: the metrics, the
optional tracer, the exchange instruments, and the loop that samples object-held values."""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sekisho.config import Settings
from sekisho.instruments import ExchangeInstruments
from sekisho.loops import Loop, LoopFailures, not_counted
from sekisho.metered_fetcher import MeteredFetcher
from sekisho.metrics import Metrics, multiprocess_dir_from_env
from sekisho.verify.fetcher import JsonFetcher

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from sekisho.tracing import Tracing

log = logging.getLogger(__name__)
METRICS_SAMPLE = Loop("metrics_sample", "metrics_sample_failed", log)

SAMPLE_INTERVAL_SECONDS = 5.0
# A scrape within this long of the last one gets the same body. GET /metrics is unauthenticated
# (the shipped config binds it to the pod IP) and a render costs 14-21 ms of the event loop with
# the default 50 audiences once traffic has made its series (78 ms with 200), so one client
# asking on a kept-alive connection could hold a worker's loop; Prometheus scrapes every 15-60 s
# (red team session 13, bench/results/redteam_session13.md).
SCRAPE_REUSE_SECONDS = 1.0


@dataclass
class Observability:
    """Metrics (None when [metrics] enabled = false) and tracing (None unless enabled)."""

    metrics: Metrics | None
    tracing: "Tracing | None"
    instruments: ExchangeInstruments
    # Counts every background loop's failed iterations (sekisho_background_failures_total).
    loop_failures: LoopFailures
    _scraped: tuple[float, tuple[bytes, str]] | None = field(default=None, init=False, repr=False)

    def fetcher_for(self, fetcher: JsonFetcher, issuer: str) -> JsonFetcher:
        """`fetcher`, counting JWKS fetches for `issuer` when metrics are on."""
        if self.metrics is None:
            return fetcher
        return MeteredFetcher(fetcher, self.metrics, issuer)

    def scrape(self, now: float) -> tuple[bytes, str]:
        """Sample object-held values, then render every metric (of the whole pod with workers);
        the last body again within SCRAPE_REUSE_SECONDS of it.

        Raises: RuntimeError when metrics are disabled (the route is not mounted then).
        """
        if self.metrics is None:
            raise RuntimeError("metrics are disabled")
        if self._scraped is not None and 0 <= now - self._scraped[0] < SCRAPE_REUSE_SECONDS:
            return self._scraped[1]
        self.metrics.sample(now)
        rendered = self.metrics.render()
        self._scraped = (now, rendered)
        return rendered

    async def sample_forever(self, now: Callable[[], float]) -> None:
        """Keep this worker's sampled gauges fresh for scrapes answered by another worker."""
        metrics = self.metrics
        if metrics is None:
            return

        async def sample() -> None:
            metrics.sample(now())

        await self.loop_failures.repeat(METRICS_SAMPLE, sample, lambda: SAMPLE_INTERVAL_SECONDS)

    def close(self) -> None:
        if self.tracing is not None:
            self.tracing.shutdown()


def build_observability(
    settings: Settings, span_exporter: "SpanExporter | None" = None
) -> Observability:
    """Metrics and tracing as configured; `span_exporter` replaces OTLP (tests).

    Raises: ConfigError when tracing is on and its packages are missing.
    """
    metrics = None
    if settings.metrics.enabled:
        metrics = Metrics(
            max_audiences=settings.metrics.max_audiences,
            multiprocess_dir=multiprocess_dir_from_env(),
            known_audiences=(
                *settings.metrics.audiences,
                *(route.audience for route in settings.gateway.routes),
            ),
        )
    tracing = None
    if settings.tracing.enabled:
        from sekisho.tracing import build_tracing

        tracing = build_tracing(settings.tracing, span_exporter)
    tracer = tracing.tracer if tracing is not None else None
    failures = LoopFailures(metrics.background_failed if metrics is not None else not_counted)
    return Observability(metrics, tracing, ExchangeInstruments(metrics, tracer), failures)
