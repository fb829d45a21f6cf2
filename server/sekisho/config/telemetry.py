"""[logging], [metrics] and [tracing]: what the service tells operators."""

from typing import Literal

from pydantic import Field, field_validator

from sekisho.config.section import Section


class LoggingConfig(Section):
    """[logging]: structured logs on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class MetricsConfig(Section):
    """[metrics]: Prometheus metrics on GET /metrics of a separate admin listener."""

    enabled: bool = True
    # The admin listener serving GET /metrics (plain HTTP, never on the public HTTP listener, so an
    # anonymous caller learns nothing from it); loopback by default.
    listen: str = "127.0.0.1:9464"
    # Distinct audience label values before further audiences are counted as "other".
    max_audiences: int = Field(default=50, ge=1, le=1000)
    # Audiences labelled by name from the start; others only once a token was granted for them.
    audiences: tuple[str, ...] = ()

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port")
        return value


class TracingConfig(Section):
    """[tracing]: OpenTelemetry spans per exchange stage, exported over OTLP (off by default)."""

    enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4317"
    service_name: str = "sekisho"
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
