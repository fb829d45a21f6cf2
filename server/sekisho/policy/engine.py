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

    async def close(self) -> None:
        """Stop background work and release connections."""
        ...
