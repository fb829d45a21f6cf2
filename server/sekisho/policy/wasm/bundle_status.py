"""What an operator can see of the policy bundle a replica serves (docs/operations.md#monitoring):
the revision in force, when it was activated, when the bundle server last answered, and the
failed polls and loads by reason. The bundle engine records; `Metrics.sample` reads."""

from dataclasses import dataclass, field

from sekisho.clock import Clock

# Reasons, named like the log events of the same failures (bundles.py).
DOWNLOAD_FAILED = "download_failed"  # unreachable, not HTTP 200/304 (conditional), too large
REJECTED = "rejected"  # signature, not a bundle, compile, load or self-test
POLL_FAILED = "poll_failed"  # anything else a poll raised (a bug; logged with its stack)


@dataclass
class BundleStatus:
    """Updated by BundlePolicyEngine (plain attribute writes, also from the thread that loads a
    bundle file); times are `clock` seconds, 0 = never."""

    clock: Clock
    revision: str = ""
    activated_at: float = 0.0
    polled_at: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)

    def activated(self, revision: str) -> None:
        self.revision = revision
        self.activated_at = self.clock.now()

    def polled(self) -> None:
        """The bundle server answered with the current bundle (200 that loaded, or 304)."""
        self.polled_at = self.clock.now()

    def failed(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1
