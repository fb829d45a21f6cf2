"""The policy bundle a replica serves, and the [policy.shadow] bundle's failures, sampled from
their BundleStatus into gauges by `Metrics.sample()` ([policy] bundle_url / bundle_file;
docs/operations.md#monitoring)."""

from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge


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


class BundleGauges:
    """The live bundle's revision, activation, last poll and failures; the shadow's failures.
    Timestamps take the stalest live worker (livemin): each worker polls alone."""

    def __init__(self, own: CollectorRegistry | None) -> None:
        self._bundle: BundleState | None = None
        self._shadow_bundle: BundleState | None = None
        self._revisions: list[str] = []  # the serving revision last, at most two
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

    def watch(self, bundle: BundleState) -> None:
        self._bundle = bundle

    def watch_shadow(self, bundle: BundleState) -> None:
        self._shadow_bundle = bundle

    def sample(self) -> None:
        if self._bundle is not None:
            self._sample_live(self._bundle)
        if self._shadow_bundle is not None:
            for reason, count in self._shadow_bundle.failures.items():
                self.shadow_bundle_failures.labels(reason).set(count)

    def _sample_live(self, bundle: BundleState) -> None:
        revisions = self._revisions
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
