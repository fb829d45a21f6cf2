"""The PolicyEngine role shared by the embedded (regopy) and OPA engines."""

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
