"""The event names a policy engine logs its loads under: the live policy's, or the shadow
policy's ([policy.shadow], docs/operators.md "Logs"). A shadow may read the live folder with
another query, or the live bundle, so its `path` or `source` alone did not tell its line from the
live one's; and a shadow that fails to reload is not the live policy failing (its start failure
already has its own name, `shadow_policy_load_failed`)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadEvents:
    """A policy folder's: `loaded`, it compiled (or was published) and passed its self-test;
    `reload_failed`, a changed policy did not, and the last good one keeps serving. A bundle's
    (`bundle_file`, `bundle_url`): `bundle_loaded`, it verified, loaded and passed its self-test
    and now serves; `bundle_rejected`, it did not, and the last good one keeps serving;
    `bundle_download_failed`, the bundle server could not be read; `bundle_poll_failed`, a poll
    failed in a way the poller did not foresee, counted under the `loop` label `bundle_poll` of
    sekisho_background_failures_total (a shadow's crashes are not the live poller's)."""

    loaded: str
    reload_failed: str
    bundle_loaded: str
    bundle_rejected: str
    bundle_download_failed: str
    bundle_poll_failed: str
    bundle_poll: str


LIVE_LOAD_EVENTS = LoadEvents(
    "policy_loaded",
    "policy_reload_failed",
    "policy_bundle_loaded",
    "policy_bundle_rejected",
    "policy_bundle_download_failed",
    "policy_bundle_poll_failed",
    "policy_bundle_poll",
)
SHADOW_LOAD_EVENTS = LoadEvents(
    "shadow_policy_loaded",
    "shadow_policy_reload_failed",
    "shadow_policy_bundle_loaded",
    "shadow_policy_bundle_rejected",
    "shadow_policy_bundle_download_failed",
    "shadow_policy_bundle_poll_failed",
    "shadow_bundle_poll",
)
