"""The PolicyEngine role shared by the embedded (OPA-compiled Wasm) and OPA server engines, and
the lifecycle the composition root drives them through."""

from typing import Any, Protocol

from sekisho.models import Decision


class PolicyEngine(Protocol):
    """Evaluates the configured query for one input document."""

    @property
    def ready(self) -> bool:
        """True once a policy has loaded and passed its self-test."""
        ...

    async def decide(self, document: dict[str, Any]) -> Decision:
        """Evaluate policy. Raises: TemporarilyUnavailableError when the engine cannot answer."""
        ...


class PolicyRuntime(PolicyEngine, Protocol):
    """A PolicyEngine with the lifecycle the service runs it through."""

    async def start(self) -> None:
        """Load the policy and begin answering.

        Raises: PolicyLoadError when the policy itself is broken (an unreachable OPA is not an
        error here: the engine stays not ready and keeps trying).
        """
        ...

    async def folder_changed(self) -> bool:
        """The policy folder changed: use the new policy, or keep the last good one on error
        (logged). Never blocks the event loop."""
        ...

    async def changed_since_load(self) -> bool:
        """Whether the policy folder (or bundle file) now holds another policy than the one
        loaded (source_fingerprint; a file's digest), or none loaded yet, read off the event
        loop. False when this engine reads no folder of its own (a bundle server, OPA's own
        bundles) or will read it afresh anyway (OPA's supervisor, before a first publish)."""
        ...

    async def close(self) -> None:
        """Stop background work and release connections."""
        ...


async def reload_if_changed(runtime: PolicyRuntime) -> bool:
    """The catch-up of a policy folder's watch, once it has begun: reload only when the folder
    changed since the start loaded it (an edit made in the seconds between the load and the
    watch, which raised no event the watch could see). An unchanged folder is not reloaded: a
    reload at every start emptied the decision and gateway caches just filled and, with OPA
    `manage = true`, published the folder again (red team session 17, why the policy watch had
    no catch-up). A change after the look raises an event: the watch has begun."""
    if not await runtime.changed_since_load():
        return True
    return await runtime.folder_changed()
