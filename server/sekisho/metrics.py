"""Prometheus metrics (docs/operations.md#monitoring): one `Metrics` per service, never the global
registry.

One process: every metric lives on a private CollectorRegistry that GET /metrics renders.
Several workers (server.workers != 1): the supervisor sets PROMETHEUS_MULTIPROC_DIR to a private
folder before any worker exists; prometheus-client then keeps each process's values in files
there, and /metrics renders a MultiProcessCollector over the folder, so whichever worker answers
the scrape reports the whole pod. Values that live in objects (cache counters, key ages) are
sampled into gauges by `sample()`, because a custom collector would only see the worker that
answers the scrape.

This module holds the registry, the counters the exchange pipeline and background work bump, and
`render()`; the sampled gauges are in `load_gauges.py`, `key_gauges.py` and `bundle_gauges.py`.
"""

import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from sekisho.audience_labels import OTHER_AUDIENCE, UNKNOWN_AUDIENCE, AudienceLabels
from sekisho.bundle_gauges import BundleGauges, BundleState
from sekisho.key_gauges import KeyGauges
from sekisho.load_gauges import (
    AdmissionState,
    ConnectionGauges,
    ConnectionState,
    CountingCache,
    LoadGauges,
)
from sekisho.metered_fetcher import MeteredFetcher
from sekisho.signing.keys import KeyRecord
from sekisho.tallies import TOTAL, BatchedTally, DirectTally, Tally

# AudienceLabels (and its label values) and MeteredFetcher have modules of their own; tests import
# them from here, as they did before.
__all__ = [
    "GRANTED",
    "GRANTED_COUNTERS_MAX",
    "MULTIPROC_ENV",
    "OTHER_AUDIENCE",
    "STAGES",
    "STAGE_BUCKETS",
    "UNKNOWN_AUDIENCE",
    "WORKER_RESTARTS",
    "WORKER_RESTARTS_HELP",
    "AudienceLabels",
    "MeteredFetcher",
    "Metrics",
    "multiprocess_dir_from_env",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Sub-millisecond resolution at the bottom (a cached verify is tens of µs), 1 s at the top.
STAGE_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)
# Counted by the supervisor (workers.py) and shown by every worker's /metrics.
WORKER_RESTARTS = "sekisho_worker_restarts"
WORKER_RESTARTS_HELP = "Worker processes restarted by the supervisor after a crash."
STAGES = ("verify", "policy", "sign", TOTAL)
GRANTED = "granted"  # the outcome label of a granted exchange
# Raw (audience, entry point) pairs whose granted counter is kept (exchange_granted): whatever
# audiences a policy grants, this memory is bounded.
GRANTED_COUNTERS_MAX = 4096


class Metrics:
    """Every Sekisho metric. `multiprocess_dir` non-empty = the pod-wide multiprocess mode."""

    def __init__(
        self,
        *,
        max_audiences: int,
        multiprocess_dir: str = "",
        known_audiences: Iterable[str] = (),
    ) -> None:
        self._multiprocess_dir = multiprocess_dir
        own = None if multiprocess_dir else CollectorRegistry(auto_describe=True)
        self._audience = AudienceLabels(max_audiences, known_audiences)
        # Registered in this order, which is the order /metrics lists them in.
        self._exchange_metrics(own)
        self._load = LoadGauges(own)
        self._connections = ConnectionGauges(own)
        self._keys = KeyGauges(own)
        self._process_metrics(own)
        self._decision_metrics(own)
        self._bundles = BundleGauges(own)
        self._exposition = own or self._multiprocess_registry()
        # Label lookups cost more than the count itself: keep the children of the hot path. In
        # one process, the exchange's counts and stage times are tallied in plain ints and
        # copied to the children before every render (tallies.py); several workers count into
        # their files directly.
        children = {stage: self.stage_seconds.labels(stage) for stage in STAGES}
        self._tally: Tally = (
            DirectTally(children) if multiprocess_dir else BatchedTally(children, STAGE_BUCKETS)
        )
        # No lock: exchange_finished/exchange_granted run only on the event loop's thread.
        self._outcomes: dict[tuple[str, str, str, str], Any] = {}
        self._granted: dict[tuple[str, str], Any] = {}  # exchange_granted's counters

    def _exchange_metrics(self, own: CollectorRegistry | None) -> None:
        """Each exchange (outcome, refusal code, stage times) and the JWKS fetches verifying it
        makes."""
        self.exchanges = Counter(
            "sekisho_exchanges",
            "Token exchanges by outcome, OAuth reason, audience and entry point.",
            ("outcome", "reason", "audience", "entrypoint"),
            registry=own,
        )
        self.refusals = Counter(
            "sekisho_refusals",
            "Refused exchanges by internal error code (errors.py `code`: token_expired, "
            "signature_invalid, …; finer than the OAuth reason) and entry point.",
            ("code", "entrypoint"),
            registry=own,
        )
        self.stage_seconds = Histogram(
            "sekisho_stage_duration_seconds",
            "Time spent per exchange stage (verify, policy, sign) and in total.",
            ("stage",),
            buckets=STAGE_BUCKETS,
            registry=own,
        )
        self.jwks_fetches = Counter(
            "sekisho_jwks_fetches",
            "JWKS and discovery fetches per issuer.",
            ("issuer",),
            registry=own,
        )
        self.jwks_failures = Counter(
            "sekisho_jwks_fetch_failures",
            "Failed JWKS and discovery fetches per issuer.",
            ("issuer",),
            registry=own,
        )

    def _process_metrics(self, own: CollectorRegistry | None) -> None:
        """The pod's own health: worker restarts and failed background-loop iterations."""
        self.worker_restarts = Counter(WORKER_RESTARTS, WORKER_RESTARTS_HELP, registry=own)
        self.background_failures = Counter(
            "sekisho_background_failures",
            "Failed iterations of a background loop (key_rotation, jwks_refresh, status_flush, "
            "…; loops.py), each logged with its traceback; the loop goes on.",
            ("loop",),
            registry=own,
        )

    def _decision_metrics(self, own: CollectorRegistry | None) -> None:
        """The decision log's and the shadow policy's counters (docs/operations.md#monitoring)."""
        self.decision_log_records = Counter(
            "sekisho_decision_log_records",
            "Decision log records by outcome (written, dropped: queue full, failed: write error).",
            ("outcome",),
            registry=own,
        )
        self.shadow_evaluations = Counter(
            "sekisho_shadow_evaluations",
            "Shadow policy evaluations by outcome (same, different, dropped: queue full).",
            ("outcome",),
            registry=own,
        )
        self.shadow_differences = Counter(
            "sekisho_shadow_differences",
            "Shadow decisions that differ from the live one, by audience and kind of difference.",
            ("audience", "kind"),
            registry=own,
        )

    def shadow_differed(self, audience: str, kind: str, granted: bool) -> None:
        """`granted`: the live or the shadow decision granted `audience`."""
        self.shadow_differences.labels(self._audience(audience, granted=granted), kind).inc()

    def _multiprocess_registry(self) -> CollectorRegistry:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self._multiprocess_dir)  # type: ignore[no-untyped-call]
        return registry

    def exchange_finished(
        self,
        *,
        outcome: str,
        reason: str,
        audience: str,
        entrypoint: str,
        seconds: float,
        code: str = "",
        stages: Iterable[tuple[str, float]] = (),
    ) -> None:
        """Count one exchange (outcome "granted" or "refused", with the refusal's internal `code`),
        its total latency and the (stage, seconds) of the stages it ran."""
        label = self._audience(audience, granted=outcome == GRANTED)
        counter = self._outcome_counter((outcome, reason, label, entrypoint))
        if code:
            self.refusals.labels(code, entrypoint).inc()
        self._tally.record(counter, seconds, stages)

    def exchange_granted(
        self, audience: str, entrypoint: str, seconds: float, stages: Iterable[tuple[str, float]]
    ) -> None:
        """`exchange_finished` of a granted exchange, for the hot path: the counter is kept per
        (audience, entry point) as given. A granted audience's label is settled by its first
        grant (known, or "other" once the label slots are full; AudienceLabels never forgets
        or frees a slot), so the cached counter is the one the label would name. Bounded:
        past GRANTED_COUNTERS_MAX pairs the others take the full path."""
        counter = self._granted.get((audience, entrypoint))
        if counter is None:
            label = self._audience(audience, granted=True)
            counter = self._outcome_counter((GRANTED, "", label, entrypoint))
            if len(self._granted) < GRANTED_COUNTERS_MAX:
                self._granted[(audience, entrypoint)] = counter
        self._tally.record(counter, seconds, stages)

    def _outcome_counter(self, key: tuple[str, str, str, str]) -> Any:
        """The tally's counter of sekisho_exchanges{outcome, reason, audience, entrypoint}."""
        counter = self._outcomes.get(key)
        if counter is None:
            counter = self._outcomes[key] = self._tally.counter(self.exchanges.labels(*key))
        return counter

    def background_failed(self, loop: str) -> None:
        """Count one failed iteration of background loop `loop` (loops.LoopFailures)."""
        self.background_failures.labels(loop).inc()

    def jwks_fetched(self, issuer: str, *, ok: bool) -> None:
        self.jwks_fetches.labels(issuer).inc()
        if not ok:
            self.jwks_failures.labels(issuer).inc()

    def watch_cache(self, name: str, cache: CountingCache) -> None:
        """Report `cache`'s hits, misses and size at every `sample()`."""
        self._load.watch_cache(name, cache)

    def watch_keys(self, records: Callable[[], tuple[KeyRecord, ...]]) -> None:
        """Report the age and state of the keys `records()` returns at every `sample()`."""
        self._keys.watch(records)

    def watch_in_flight(self, count: Callable[[], int]) -> None:
        """Report `count()` (the admission bound's own in-flight count) at every `sample()`."""
        self._load.watch_in_flight(count)

    def watch_admission(self, admission: AdmissionState) -> None:
        """Report the overload control's limit, queue and refusals at every `sample()`."""
        self._load.watch_admission(admission)

    def watch_connections(self, guard: ConnectionState) -> None:
        """Report the HTTP listener's refused connections and handshakes at every `sample()`."""
        self._connections.watch(guard)

    def watch_bundle(self, bundle: BundleState) -> None:
        """Report the policy bundle's revision, activation, last poll and failures at `sample()`."""
        self._bundles.watch(bundle)

    def watch_shadow_bundle(self, bundle: BundleState) -> None:
        """Report the [policy.shadow] bundle's failures at every `sample()`."""
        self._bundles.watch_shadow(bundle)

    def sample(self, now: float) -> None:
        """Copy values held by objects (caches, keys, in-flight) into gauges; every 5 s."""
        # In this order: it is the order new label values first reach a worker's files.
        self._load.sample_admission()
        self._connections.sample()
        self._load.sample_caches()
        self._bundles.sample()
        self._keys.sample(now)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        self._tally.flush()
        return generate_latest(self._exposition), CONTENT_TYPE_LATEST


def multiprocess_dir_from_env() -> str:
    """The multiprocess folder the supervisor set up, or "" in a single process."""
    return os.environ.get(MULTIPROC_ENV, "")
