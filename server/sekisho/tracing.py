"""Optional OpenTelemetry tracing ([tracing], off by default): one `exchange` span per exchange
with `verify`, `policy` and `sign` children.

opentelemetry-sdk and the OTLP exporter are the optional `tracing` extra
(`pip install 'sekisho[tracing]'`). This module is imported only when tracing.enabled is true, so
a disabled tracer costs nothing and needs neither package. The TracerProvider is private to the
service (never the global one): tests and several services in one process do not interfere.
"""

from dataclasses import dataclass

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Tracer

from sekisho.config import TracingConfig
from sekisho.errors import ConfigError

INSTRUMENTATION_NAME = "sekisho"


@dataclass
class Tracing:
    """A tracer and the provider that exports its spans."""

    tracer: Tracer
    provider: TracerProvider

    def shutdown(self) -> None:
        """Flush pending spans and stop the exporter."""
        self.provider.shutdown()


def _otlp_exporter(endpoint: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            "config key 'tracing.enabled': the OTLP exporter is not installed "
            "(pip install 'sekisho[tracing]')"
        ) from exc
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
    return exporter


def build_tracing(config: TracingConfig, exporter: SpanExporter | None = None) -> Tracing:
    """A tracer exporting to `exporter` (tests) or, by default, OTLP at `otlp_endpoint`.

    Raises: ConfigError when the OTLP exporter package is missing.
    """
    provider = TracerProvider(
        resource=Resource.create({"service.name": config.service_name}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
    )
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(config.otlp_endpoint)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(tracer=provider.get_tracer(INSTRUMENTATION_NAME), provider=provider)
