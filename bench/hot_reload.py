"""How long a policy edit takes to decide: the embedded engine behind the real folder watcher.

Issue 12's target is that a data edit (policies/data/*.json) and a .rego edit change decisions
within 2 s. This is a timing, so it lives here and not in the tests (the integration test
tests/integration/test_embedded_hot_reload.py proves the edits land and a broken edit keeps the
last good policy, with a generous bound). The path measured is the service's own: the shipped
policy folder copied to a temporary directory, `WasmPolicyEngine` with the default
[policy] limits, no compile cache (every .rego edit runs `opa build` again, as a fresh edit
does), `reload.watch_directory` (watchfiles, 300 ms debounce) calling `folder_changed`.

Each round edits, then polls `decide` every 10 ms until the decision flips:
- data: remove the sales group's grant on the CRM downstream from registry.json (deny), then
  put it back (allow) — two timings per round, data is swapped without recompiling;
- rego: append a rule that denylists the tenant (deny, one `opa build`), then remove it (allow).

    .venv/bin/python bench/hot_reload.py [--rounds 10] [--out bench/results/hot_reload.json]

The opa binary is bin/opa (or `opa` on PATH). Prints median / p90 / max per kind and the load
average before and after, and writes the raw timings as JSON.
"""

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sekisho.config import PolicyConfig  # noqa: E402
from sekisho.loops import LoopFailures, not_counted  # noqa: E402
from sekisho.policy.wasm.engine import WasmPolicyEngine  # noqa: E402
from sekisho.policy_components import wasm_limits  # noqa: E402
from sekisho.reload import watch_directory  # noqa: E402

from tests.opa import opa_binary  # noqa: E402
from tests.policy_edits import (  # noqa: E402
    DENYLIST_RULE,
    SALES,
    crm_grants,
    seconds_until_decided,
    set_crm_grants,
)
from tests.unit.policy.inputs import POLICIES, QUERY  # noqa: E402

GIVE_UP_SECONDS = 60.0


async def flipped(engine: WasmPolicyEngine, allow: bool) -> float:
    """Seconds until the decision for SALES is `allow`."""
    try:
        return await seconds_until_decided(engine, allow, give_up=GIVE_UP_SECONDS, poll=0.01)
    except TimeoutError as exc:
        raise SystemExit(str(exc)) from None


async def measure(rounds: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"data": [], "rego": []}
    with tempfile.TemporaryDirectory(prefix="sekisho-reload-") as tmp:
        root = Path(tmp) / "policies"
        shutil.copytree(POLICIES, root)
        config = PolicyConfig()
        engine = WasmPolicyEngine(
            root,
            QUERY,
            opa_binary(),
            wasm_limits(config),
            compile_timeout=config.compile_timeout_seconds,
        )
        await engine.start()
        watcher = asyncio.create_task(
            watch_directory(root, engine.folder_changed, "policy", LoopFailures(not_counted))
        )
        await asyncio.sleep(0.5)  # the watcher is set up
        try:
            if not (await engine.decide(SALES)).allow:
                raise SystemExit("the shipped policy should allow sales on the CRM downstream")
            original_grants = crm_grants(root)
            access = root / "sekisho" / "exchange" / "access.rego"
            good = access.read_text()
            for _ in range(rounds):
                set_crm_grants(root, {})
                timings["data"].append(await flipped(engine, allow=False))
                set_crm_grants(root, original_grants)
                timings["data"].append(await flipped(engine, allow=True))
                await asyncio.sleep(0.5)  # let the debounce window close between kinds
                access.write_text(good + DENYLIST_RULE)
                timings["rego"].append(await flipped(engine, allow=False))
                access.write_text(good)
                timings["rego"].append(await flipped(engine, allow=True))
                await asyncio.sleep(0.5)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await engine.close()
    return timings


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_s": round(statistics.median(ordered), 3),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "max_s": round(ordered[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    load_before = os.getloadavg()
    timings = asyncio.run(measure(args.rounds))
    load_after = os.getloadavg()
    result: dict[str, Any] = {
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "summary": {kind: summary(values) for kind, values in timings.items()},
        "timings_s": {kind: [round(v, 3) for v in values] for kind, values in timings.items()},
    }
    before, after = result["load_average_before"], result["load_average_after"]
    print(f"load average before {before}, after {after}")
    for kind, stats in result["summary"].items():
        print(
            f"{kind} edit -> decision: median {stats['median_s']} s, p90 {stats['p90_s']} s, "
            f"max {stats['max_s']} s ({stats['n']} edits)"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
