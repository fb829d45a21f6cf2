"""Issue 15 item 2: one flush reaches every cache that holds a grant or a token."""

from typing import Any

from sekisho.gateway.cache import GatewayTokenCache
from sekisho.models import Decision
from sekisho.policy.cache import CachingPolicyEngine

from tests.fakes.clock import FakeClock


class ActivatingEngine:
    """A PolicyRuntime that activates policies on its own (like OPA's supervisor)."""

    def __init__(self) -> None:
        self.listeners: list[Any] = []
        self.ready = True

    def on_policy_activated(self, listener: Any) -> None:
        self.listeners.append(listener)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def folder_changed(self) -> bool:
        return True

    async def decide(self, document: dict[str, Any]) -> Decision:
        return Decision(allow=True, scopes=("a",), cache_ttl_seconds=60)


async def test_every_flush_empties_every_registered_cache() -> None:
    clock = FakeClock()
    engine = ActivatingEngine()
    policy = CachingPolicyEngine(engine, clock, max_entries=10)
    gateway = GatewayTokenCache(clock, max_entries=10, margin_seconds=0)
    policy.on_flush(gateway.clear)
    await policy.decide({"x": 1})
    gateway.put("k", "token", int(clock.now()) + 300)
    assert len(policy) == 1 and gateway.get("k") == "token"

    await policy.folder_changed()  # an embedded engine's reload
    assert len(policy) == 0 and gateway.get("k") is None

    await policy.decide({"x": 1})
    gateway.put("k", "token", int(clock.now()) + 300)
    for activated in engine.listeners:  # OPA published a new policy from its supervisor
        activated()
    assert len(policy) == 0 and gateway.get("k") is None


def test_a_token_minted_before_a_flush_is_not_stored_after_it() -> None:
    clock = FakeClock()
    gateway = GatewayTokenCache(clock, max_entries=10, margin_seconds=0)
    generation = gateway.generation  # read when the exchange began
    gateway.clear()  # the deny-list reload landed while the exchange ran
    gateway.put("k", "old-policy-token", int(clock.now()) + 300, generation=generation)
    assert gateway.get("k") is None
    gateway.put("k", "new-token", int(clock.now()) + 300, generation=gateway.generation)
    assert gateway.get("k") == "new-token"
