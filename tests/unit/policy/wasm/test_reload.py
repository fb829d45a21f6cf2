"""The embedded engine rebuilds a changed folder off the event loop (folder_changed); a data-only
edit reuses the compiled module; edits land and a broken edit keeps the last good (how fast:
bench/hot_reload.py)."""

import asyncio
import json
import shutil
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
    # A compiler that waits for the event loop: once `hold` exists, the real opa runs only after
    # the loop has answered decisions and created `release` (or after a 30 s give-up). On the
    # loop, the compile would block what it waits for: event order, not ticks per second.
    hold, release = tmp_path / "hold", tmp_path / "release"
    slow_opa = tmp_path / "slow-opa"
    slow_opa.write_text(
        "#!/bin/sh\ni=0\n"
        f'while [ -e "{hold}" ] && [ ! -e "{release}" ] && [ $i -lt 3000 ]; do\n'
        "  sleep 0.01; i=$((i+1))\ndone\n"
        f'exec "{opa_binary()}" "$@"\n'
    )
    slow_opa.chmod(0o755)
    engine = WasmPolicyEngine(
        root, QUERY, slow_opa, wasm_limits(), compile_timeout=compile_timeout()
    )
    engine.load()
    hold.touch()
    big_registry(root, 1500)
    scopes = root / "sekisho" / "exchange" / "scopes.rego"
    scopes.write_text(scopes.read_text() + "\n_recompile_marker := 1\n")  # a module edit: opa build
    answered: list[bool] = []

    async def meanwhile() -> None:
        while True:  # exchanges keep being answered by the last good policy
            await asyncio.sleep(0.005)
            decision = await engine.decide(policy_input(CRM, groups=["sales"], tenant="acme"))
            answered.append(decision.allow)
            if len(answered) == 3:
                release.touch()

    task = asyncio.create_task(meanwhile())
    assert await engine.folder_changed() is True
    task.cancel()
    assert len(answered) >= 3, "the loop answered nothing while the compiler ran"
    assert answered and all(answered)
    assert (
        await engine.decide(policy_input("https://svc7-as.example.com", groups=["team-7"]))
    ).allow
