"""Edits to a copy of the shipped policy folder, and the wait for decisions to follow them:
shared by the hot-reload test (tests/integration/test_embedded_hot_reload.py) and its timing
(bench/hot_reload.py)."""

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from sekisho.policy.wasm.engine import WasmPolicyEngine

from tests.unit.policy.inputs import CRM, policy_input

SALES = policy_input(CRM, groups=["sales"], tenant="acme")
# Appended to sekisho/exchange/access.rego: denies SALES (one `opa build` to land).
DENYLIST_RULE = '\ndenylisted if input.subject.tenant == "acme"\n'


def _registry_path(root: Path) -> Path:
    return root / "data" / "registry.json"


def crm_grants(root: Path) -> Any:
    """The CRM downstream's group grants in the folder's registry.json."""
    registry = json.loads(_registry_path(root).read_text())
    return registry["sekisho"]["registry"]["downstreams"][CRM]["group_grants"]


def set_crm_grants(root: Path, grants: dict[str, list[str]]) -> None:
    """Rewrite registry.json with the CRM downstream's group grants replaced ({} denies SALES)."""
    path = _registry_path(root)
    registry = json.loads(path.read_text())
    registry["sekisho"]["registry"]["downstreams"][CRM]["group_grants"] = grants
    path.write_text(json.dumps(registry))


async def seconds_until_decided(
    engine: WasmPolicyEngine, allow: bool, *, give_up: float, poll: float
) -> float:
    """Seconds until the decision for SALES is `allow`, polling every `poll` seconds.

    Raises: TimeoutError after `give_up` seconds (the edit never took effect).
    """
    started = time.monotonic()
    while time.monotonic() - started < give_up:
        if (await engine.decide(SALES)).allow is allow:
            return time.monotonic() - started
        await asyncio.sleep(poll)
    raise TimeoutError(f"the edit never took effect (gave up after {give_up} s)")
