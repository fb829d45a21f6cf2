"""The service's load, sampled into gauges by `Metrics.sample()` (docs/operations.md#monitoring):
exchanges in flight, the caches' counts, the overload control's limit, queue and refusals, and
the public HTTP listener's refused connections and TLS handshakes (http/guard.py)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge


class CountingCache(Protocol):
    """A cache that counts its own hits and misses (identity, policy and gateway caches)."""

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    def __len__(self) -> int: ...


class AdmissionState(Protocol):
    """What the overload control exposes (admission.Admission)."""

    @property
    def queued(self) -> int: ...

    @property
    def concurrency_limit(self) -> int: ...

    @property
    def shed_counts(self) -> dict[str, int]: ...


class ConnectionState(Protocol):
    """What the metrics read from the public HTTP listener's guard (http/guard.py)."""

    @property
    def refused_by_reason(self) -> dict[str, int]: ...

    @property
    def handshaking(self) -> int: ...

    @property
    def handshakes_failed(self) -> int: ...


@dataclass(frozen=True)
class _Caches:
    name: str
    cache: CountingCache


class LoadGauges:
    """What `sample()` copies from the objects that hold it: exchanges in flight, the caches'
    counts, the overload control's limit, queue and refusals."""

    def __init__(self, own: CollectorRegistry | None) -> None:
        self._caches: list[_Caches] = []
        self._in_flight: Callable[[], int] = int
        self._admission: AdmissionState | None = None
        self.in_flight = Gauge(
            "sekisho_exchanges_in_flight",
            "Exchanges being processed now (sampled; summed over live workers).",
            registry=own,
            multiprocess_mode="livesum",
        )
        self._cache_gauges = {
            kind: Gauge(
                f"sekisho_cache_{kind}",
                f"Cache {kind} since the process started (sum over live workers).",
                ("cache",),
                registry=own,
                multiprocess_mode="livesum",
            )
            for kind in ("hits", "misses", "entries")
        }
        self.admission = {
            name: Gauge(
                f"sekisho_admission_{name}",
                text,
                labels,
                registry=own,
                multiprocess_mode="livesum",
            )
            for name, text, labels in (
                ("limit", "Adaptive concurrency limit (sum over live workers).", ()),
                ("queued", "Exchanges waiting for a slot (sum over live workers).", ()),
                (
                    "shed",
                    "Exchanges refused by overload control since start, by reason.",
                    ("reason",),
                ),
            )
        }

    def watch_cache(self, name: str, cache: CountingCache) -> None:
        self._caches.append(_Caches(name, cache))

    def watch_in_flight(self, count: Callable[[], int]) -> None:
        self._in_flight = count

    def watch_admission(self, admission: AdmissionState) -> None:
        self._admission = admission

    def sample_admission(self) -> None:
        """The in-flight count, and the overload control's limit, queue and refusals."""
        self.in_flight.set(self._in_flight())
        if self._admission is not None:
            self.admission["limit"].set(self._admission.concurrency_limit)
            self.admission["queued"].set(self._admission.queued)
            for reason, count in self._admission.shed_counts.items():
                self.admission["shed"].labels(reason).set(count)

    def sample_caches(self) -> None:
        """Each watched cache's hits, misses and size."""
        for entry in self._caches:
            self._cache_gauges["hits"].labels(entry.name).set(entry.cache.hits)
            self._cache_gauges["misses"].labels(entry.name).set(entry.cache.misses)
            self._cache_gauges["entries"].labels(entry.name).set(len(entry.cache))


class ConnectionGauges:
    """New connections the public HTTP listener's guard refused, and its TLS handshakes,
    sampled from the guard (http/guard.py)."""

    def __init__(self, own: CollectorRegistry | None) -> None:
        self._guard: ConnectionState | None = None
        self.http_connections = {
            name: Gauge(
                f"sekisho_http_{name}",
                text,
                labels,
                registry=own,
                multiprocess_mode="livesum",
            )
            for name, text, labels in (
                (
                    "connections_refused",
                    "New connections to the public HTTP listener closed at once, before any TLS "
                    "work, since start, by reason (the [http] bound that refused them).",
                    ("reason",),
                ),
                ("handshakes_in_progress", "TLS handshakes in progress on the HTTP listener.", ()),
                (
                    "handshakes_failed",
                    "TLS handshakes on the HTTP listener that failed or timed out, since start.",
                    (),
                ),
            )
        }

    def watch(self, guard: ConnectionState) -> None:
        self._guard = guard

    def sample(self) -> None:
        guard = self._guard
        if guard is None:
            return
        for reason, count in guard.refused_by_reason.items():
            self.http_connections["connections_refused"].labels(reason).set(count)
        self.http_connections["handshakes_in_progress"].set(guard.handshaking)
        self.http_connections["handshakes_failed"].set(guard.handshakes_failed)
