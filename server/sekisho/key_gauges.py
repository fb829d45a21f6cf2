"""The signing keys' age and lifecycle state, sampled from the keyring into gauges by
`Metrics.sample()` (docs/operations.md#monitoring)."""

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Gauge

from sekisho.signing.keys import KeyRecord, KeyState


class KeyGauges:
    """sekisho_key_age_seconds and sekisho_key_state of the keys `watch`'s `records()` returns."""

    def __init__(self, own: CollectorRegistry | None) -> None:
        self._records: Callable[[], tuple[KeyRecord, ...]] = tuple
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

    def watch(self, records: Callable[[], tuple[KeyRecord, ...]]) -> None:
        self._records = records

    def sample(self, now: float) -> None:
        for record in self._records():
            self.key_age.labels(record.kid).set(now - record.created_at)
            for state in KeyState:
                self.key_state.labels(record.kid, state.value).set(state is record.state)
