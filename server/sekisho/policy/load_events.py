"""The event names a policy engine logs its policy folder's loads under: the live policy's, or
the shadow policy's ([policy.shadow], docs/operators.md "Logs"). A shadow may read the live
folder with another query, so its `path` alone did not tell its line from the live one's; and
a shadow that fails to reload is not the live policy failing (its start failure already has its
own name, `shadow_policy_load_failed`)."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LoadEvents:
    """`loaded`: a policy compiled (or was published) and passed its self-test; `reload_failed`:
    a changed policy did not, and the last good one keeps serving."""

    loaded: str
    reload_failed: str


LIVE_LOAD_EVENTS = LoadEvents("policy_loaded", "policy_reload_failed")
SHADOW_LOAD_EVENTS = LoadEvents("shadow_policy_loaded", "shadow_policy_reload_failed")
