"""The embedded engine rebuilds a changed folder off the event loop (folder_changed); a data-only
edit reuses the compiled module; edits land and a broken edit keeps the last good (how fast:
bench/hot_reload.py)."""

import asyncio
import json
import shutil
import time
from pathlib import Path

from sekisho.policy.wasm.engine import WasmPolicyEngine

from tests.bounds import compile_timeout, wasm_limits
from tests.opa import opa_binary
from tests.unit.policy.inputs import CRM, POLICIES, QUERY, policy_input


def big_registry(root: Path, count: int) -> None:
    """The shipped folder with `count` extra downstreams, so compiling takes a while."""
    path = root / "data" / "registry.json"
    registry = json.loads(path.read_text())
    downstreams = registry["sekisho"]["registry"]["downstreams"]
    for n in range(count):
        downstreams[f"https://svc{n}-as.example.com"] = {
            "resources": [f"https://svc{n}.example.com/mcp"],
            "scopes": {f"svc{n}.read": {}, f"svc{n}.write": {}},
            "group_grants": {f"team-{n % 40}": [f"svc{n}.read"]},
        }
    path.write_text(json.dumps(registry))


async def test_recompiling_leaves_the_event_loop_free_and_the_old_policy_serving(
    tmp_path: Path,
) -> None:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    # A compiler that takes a known while (OPA alone can be quicker than the loop's tick on an
    # idle machine): the real opa behind a 0.5 s pause.
    slow_opa = tmp_path / "slow-opa"
    slow_opa.write_text(f'#!/bin/sh\nsleep 0.5\nexec "{opa_binary()}" "$@"\n')
    slow_opa.chmod(0o755)
    engine = WasmPolicyEngine(
        root, QUERY, slow_opa, wasm_limits(), compile_timeout=compile_timeout()
    )
    engine.load()
    big_registry(root, 1500)
    scopes = root / "sekisho" / "exchange" / "scopes.rego"
    scopes.write_text(scopes.read_text() + "\n_recompile_marker := 1\n")  # a module edit: opa build
    ticks = 0
    answered: list[bool] = []

    async def meanwhile() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1
            if ticks % 10 == 0:  # exchanges keep being answered by the last good policy
                decision = await engine.decide(policy_input(CRM, groups=["sales"], tenant="acme"))
                answered.append(decision.allow)

    task = asyncio.create_task(meanwhile())
    started = time.monotonic()
    assert await engine.folder_changed() is True
    elapsed = time.monotonic() - started
    task.cancel()
    assert elapsed > 0.1, "the compile was too quick to show anything"
    assert ticks >= elapsed / 0.005 / 4, f"{ticks} ticks in {elapsed:.2f} s: the loop was blocked"
    assert answered and all(answered)
    assert (
        await engine.decide(policy_input("https://svc7-as.example.com", groups=["team-7"]))
    ).allow
