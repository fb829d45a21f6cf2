"""Prometheus metrics (docs/operations.md#monitoring): one `Metrics` per service, never the global
registry.

One process: every metric lives on a private CollectorRegistry that GET /metrics renders.
Several workers (server.workers != 1): the supervisor sets PROMETHEUS_MULTIPROC_DIR to a private
folder before any worker exists; prometheus-client then keeps each process's values in files
there, and /metrics renders a MultiProcessCollector over the folder, so whichever worker answers
the scrape reports the whole pod. Values that live in objects (cache counters, key ages) are
sampled into gauges by `sample()`, because a custom collector would only see the worker that
answers the scrape.
"""

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.tallies import TOTAL, BatchedTally, DirectTally, Tally
from sekisho.verify.fetcher import FetchError, JsonFetcher

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
OTHER_AUDIENCE = "other"
UNKNOWN_AUDIENCE = "unknown"
# Counted by the supervisor (workers.py) and shown by every worker's /metrics.
WORKER_RESTARTS = "sekisho_worker_restarts"
WORKER_RESTARTS_HELP = "Worker processes restarted by the supervisor after a crash."
STAGES = ("verify", "policy", "sign", TOTAL)
GRANTED = "granted"  # the outcome label of a granted exchange
# Raw (audience, entry point) pairs whose granted counter is kept (exchange_granted): whatever
# audiences a policy grants, this memory is bounded.
GRANTED_COUNTERS_MAX = 4096


class CountingCache(Protocol):
    """A cache that counts its own hits and misses (identity, policy and gateway caches)."""

    @property
    def hits(self) -> int: ...

    @property
    def misses(self) -> int: ...

    def __len__(self) -> int: ...


class AudienceLabels:
    """Names only audiences the service knows (issue 15 item 6): configured ones and those a
    token was granted for. Any other audience is "unknown", so an anonymous probe never becomes a
    label (an unknown audience must look like a denial, and attacker-chosen names must not fill
    the label slots); past `limit` known audiences, further ones count as "other"."""

    def __init__(self, limit: int, known: Iterable[str] = ()) -> None:
        self._limit = limit
        self._known: set[str] = set(sorted(set(known))[:limit])

    def __call__(self, audience: str, *, granted: bool = False) -> str:
        if audience in self._known:
            return audience
        if not granted or not audience:
            return UNKNOWN_AUDIENCE
        if len(self._known) < self._limit:
            self._known.add(audience)
            return audience
        return OTHER_AUDIENCE


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


class BundleState(Protocol):
    """What the bundle engine records (policy.wasm.bundle_status.BundleStatus)."""

    @property
    def revision(self) -> str: ...

    @property
    def activated_at(self) -> float: ...

    @property
    def polled_at(self) -> float: ...

    @property
    def failures(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class _Caches:
    name: str
    cache: CountingCache


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
        self._caches: list[_Caches] = []
        self._key_records: Callable[[], tuple[KeyRecord, ...]] = tuple
        self._in_flight: Callable[[], int] = int
        self._admission: AdmissionState | None = None
        self._connections: ConnectionState | None = None
        self._bundle: BundleState | None = None
        self._shadow_bundle: BundleState | None = None
        self._bundle_revisions: list[str] = []  # the serving revision last, at most two
        self._exchange_metrics(own)
        self._load_metrics(own)
        self._connection_metrics(own)
        self._key_metrics(own)
        self._process_metrics(own)
        self._decision_metrics(own)
        self._bundle_metrics(own)
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

    def _load_metrics(self, own: CollectorRegistry | None) -> None:
        """What `sample()` copies from the objects that hold it: exchanges in flight, the caches'
        counts, the overload control's limit, queue and refusals."""
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

    def _connection_metrics(self, own: CollectorRegistry | None) -> None:
        """New connections the public HTTP listener's guard refused, and its TLS handshakes,
        sampled from the guard (http/guard.py)."""
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

    def _key_metrics(self, own: CollectorRegistry | None) -> None:
        """The signing keys' age and lifecycle state, sampled from the keyring."""
        self.key_age = Gauge(
            "sekisho_key_age_seconds",
            "Age of each signing key since its creation, by kid.",
            ("kid",),
            registry=own,
            multiprocess_mode="livemax",
        )
        # One series per (kid, state), 1 for the key's current state and 0 for the others, so a
        # state change never leaves a stale 1 behind (label removal does not reach other workers).
        self.key_state = Gauge(
            "sekisho_key_state",
            "1 for the current lifecycle state of each signing key, 0 for the other states.",
            ("kid", "state"),
            registry=own,
            multiprocess_mode="livemax",
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

    def _bundle_metrics(self, own: CollectorRegistry | None) -> None:
        """The policy bundle a replica serves ([policy] bundle_url / bundle_file; docs/operations.md
        #metrics). Timestamps take the stalest live worker (livemin): each worker polls alone."""
        # One series per revision seen, 1 for the one in force and 0 for earlier ones, like
        # sekisho_key_state (label removal does not reach other workers).
        self.bundle_info = Gauge(
            "sekisho_policy_bundle_info",
            "1 for the manifest revision of the policy bundle in force, 0 for earlier ones.",
            ("revision",),
            registry=own,
            multiprocess_mode="livemax",
        )
        self.bundle_activated = Gauge(
            "sekisho_policy_bundle_last_activation_timestamp_seconds",
            "When the policy bundle in force was activated (Unix time; 0 = none yet).",
            registry=own,
            multiprocess_mode="livemin",
        )
        self.bundle_polled = Gauge(
            "sekisho_policy_bundle_last_poll_timestamp_seconds",
            "When the bundle server last answered with the current bundle (200 that loaded, or "
            "304; Unix time; 0 = never).",
            registry=own,
            multiprocess_mode="livemin",
        )
        self.bundle_failures = Gauge(
            "sekisho_policy_bundle_failures",
            "Bundle polls and loads that failed since start, by reason (download_failed, "
            "rejected, poll_failed); the last good bundle keeps serving.",
            ("reason",),
            registry=own,
            multiprocess_mode="livesum",
        )
        # The shadow's apart, as its log events are (shadow_policy_bundle_*): a reason value or
        # a label on the live metric would fire the live alerts (and change sums over it) for
        # a candidate that never reaches a token.
        self.shadow_bundle_failures = Gauge(
            "sekisho_shadow_policy_bundle_failures",
            "Shadow policy bundle polls and loads that failed since start, by reason "
            "(download_failed, rejected, poll_failed); the last good shadow bundle is evaluated.",
            ("reason",),
            registry=own,
            multiprocess_mode="livesum",
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
        self._caches.append(_Caches(name, cache))

    def watch_keys(self, records: Callable[[], tuple[KeyRecord, ...]]) -> None:
        """Report the age and state of the keys `records()` returns at every `sample()`."""
        self._key_records = records

    def watch_in_flight(self, count: Callable[[], int]) -> None:
        """Report `count()` (the admission bound's own in-flight count) at every `sample()`."""
        self._in_flight = count

    def watch_admission(self, admission: AdmissionState) -> None:
        """Report the overload control's limit, queue and refusals at every `sample()`."""
        self._admission = admission

    def watch_connections(self, guard: ConnectionState) -> None:
        """Report the HTTP listener's refused connections and handshakes at every `sample()`."""
        self._connections = guard

    def watch_bundle(self, bundle: BundleState) -> None:
        """Report the policy bundle's revision, activation, last poll and failures at `sample()`."""
        self._bundle = bundle

    def watch_shadow_bundle(self, bundle: BundleState) -> None:
        """Report the [policy.shadow] bundle's failures at every `sample()`."""
        self._shadow_bundle = bundle

    def sample(self, now: float) -> None:
        """Copy values held by objects (caches, keys, in-flight) into gauges; every 5 s."""
        self.in_flight.set(self._in_flight())
        if self._admission is not None:
            self.admission["limit"].set(self._admission.concurrency_limit)
            self.admission["queued"].set(self._admission.queued)
            for reason, count in self._admission.shed_counts.items():
                self.admission["shed"].labels(reason).set(count)
        if self._connections is not None:
            self._sample_connections(self._connections)
        for entry in self._caches:
            self._cache_gauges["hits"].labels(entry.name).set(entry.cache.hits)
            self._cache_gauges["misses"].labels(entry.name).set(entry.cache.misses)
            self._cache_gauges["entries"].labels(entry.name).set(len(entry.cache))
        if self._bundle is not None:
            self._sample_bundle(self._bundle)
        if self._shadow_bundle is not None:
            for reason, count in self._shadow_bundle.failures.items():
                self.shadow_bundle_failures.labels(reason).set(count)
        for record in self._key_records():
            self.key_age.labels(record.kid).set(now - record.created_at)
            for state in KeyState:
                self.key_state.labels(record.kid, state.value).set(state is record.state)

    def _sample_connections(self, guard: ConnectionState) -> None:
        for reason, count in guard.refused_by_reason.items():
            self.http_connections["connections_refused"].labels(reason).set(count)
        self.http_connections["handshakes_in_progress"].set(guard.handshaking)
        self.http_connections["handshakes_failed"].set(guard.handshakes_failed)

    def _sample_bundle(self, bundle: BundleState) -> None:
        revisions = self._bundle_revisions
        if bundle.activated_at and revisions[-1:] != [bundle.revision]:
            # The serving revision (1) and the one it replaced (0): a series per revision ever
            # seen would grow with every publish for the life of the process.
            if bundle.revision in revisions:  # a rollback to the one before
                revisions.remove(bundle.revision)
            revisions.append(bundle.revision)
            while len(revisions) > 2:
                self.bundle_info.remove(revisions.pop(0))
        for revision in revisions:
            self.bundle_info.labels(revision).set(revision == bundle.revision)
        self.bundle_activated.set(bundle.activated_at)
        self.bundle_polled.set(bundle.polled_at)
        for reason, count in bundle.failures.items():
            self.bundle_failures.labels(reason).set(count)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        self._tally.flush()
        return generate_latest(self._exposition), CONTENT_TYPE_LATEST


class MeteredFetcher:
    """A JsonFetcher that counts one issuer's JWKS and discovery fetches and their failures."""

    def __init__(self, fetcher: JsonFetcher, metrics: Metrics, issuer: str) -> None:
        self._fetcher = fetcher
        self._metrics = metrics
        self._issuer = issuer

    async def fetch_json(self, url: str) -> Any:
        """Raises: FetchError, as the wrapped fetcher does."""
        try:
            document = await self._fetcher.fetch_json(url)
        except FetchError:
            self._metrics.jwks_fetched(self._issuer, ok=False)
            raise
        self._metrics.jwks_fetched(self._issuer, ok=True)
        return document


def multiprocess_dir_from_env() -> str:
    """The multiprocess folder the supervisor set up, or "" in a single process."""
    return os.environ.get(MULTIPROC_ENV, "")
