"""Per-decision latency of both policy engines, measured in one run.

Generates a registry of 1,000 downstreams for the shipped default policy, then takes the same
N decisions (default 10,000, after a warm-up) through `WasmPolicyEngine.decide` (embedded:
OPA-compiled Wasm in process) and `OpaPolicyEngine.decide` (a local `opa run --server`,
published with manage = true), one at a time, and prints median / p90 / p99 per engine. It also
checks that both engines gave the same decision for every input.

    .venv/bin/python bench/policy_latency.py [--decisions 10000] [--downstreams 1000] \
        [--opa-py-wasm-python VENV/bin/python]

With --opa-py-wasm-python (a venv with `pip install opa-py-wasm==1.2.1`, which pins wasmtime
46.x), the same policy.wasm, data and inputs are also evaluated by the opa-py-wasm SDK in that
interpreter (bench/opa_py_wasm_probe.py), in the same run, and compared with the embedded
engine's raw evaluation (`evaluate_raw`, no decision parsing) input by input.

With --baseline REV, the embedded engine of git revision REV and of the working tree run side
by side on the same inputs, interleaved (bench/policy_ab.py): `decide` per decision outcome, and
its stages (encode, evaluate, parse).
"""

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import policy_ab
from sekisho.clock import SystemClock
from sekisho.config import PolicyConfig
from sekisho.loops import LoopFailures, not_counted
from sekisho.models import Decision
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.opa.api import OpaApi
from sekisho.policy.opa.engine import OpaPolicyEngine
from sekisho.policy.wasm.engine import WasmPolicyEngine
from sekisho.policy_components import wasm_limits

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests/loopback.py: ports, waits and stops shared with the tests

from tests.loopback import ServerStartError, free_port, http_ok, stop_process, wait_until  # noqa: E402

QUERY = "data.sekisho.exchange.decision"
NOW = 1_767_225_600
GROUPS = [f"team-{n}" for n in range(40)]
TENANTS = ["acme", "globex", "initech", "umbrella"]


def downstream(rng: random.Random, n: int) -> tuple[str, dict[str, Any]]:
    """One registry entry; every fifth is tenant-bound, every tenth has consent or risk."""
    name = f"svc{n}"
    scopes = {f"{name}.read": {}, f"{name}.write": {}}
    if n % 10 == 3:
        scopes[f"{name}.admin"] = {"risk": "high"}
    groups = rng.sample(GROUPS, 3)
    entry: dict[str, Any] = {
        "name": f"service {n}",
        "resources": {f"https://{name}.example.com/mcp": {"max_ttl_seconds": 120}},
        "scopes": scopes,
        "default_scopes": [f"{name}.read"],
        "group_grants": {
            groups[0]: [f"{name}.read"],
            groups[1]: [f"{name}.read", f"{name}.write"],
            groups[2]: sorted(scopes),
        },
        "propagate_claims": ["email", "groups"],
        "max_ttl_seconds": 300,
    }
    if n % 5 == 1:
        entry["tenant"] = TENANTS[n % len(TENANTS)]
    if n % 10 == 7:
        entry["resources"][f"https://{name}.example.com/mcp"]["consent"] = {
            "authorization_url": f"https://consent.example.com/{name}"
        }
    return f"https://{name}-as.example.com", entry


def registry(count: int, rng: random.Random) -> dict[str, Any]:
    shipped = json.loads((REPO / "policies" / "data" / "registry.json").read_text())
    levels = shipped["sekisho"]["registry"]["risk_levels"]
    entries = dict(downstream(rng, n) for n in range(count))
    return {
        "sekisho": {
            "registry": {
                "decision_cache_seconds": 60,
                "risk_levels": levels,
                "downstreams": entries,
            }
        }
    }


def document(rng: random.Random, data: dict[str, Any]) -> dict[str, Any]:
    """A schema-valid input for a random user asking a random downstream for random scopes;
    two in three users hold one of the groups the downstream grants something to."""
    entries = data["sekisho"]["registry"]["downstreams"]
    n = rng.randrange(len(entries))
    groups = rng.sample(GROUPS, rng.randint(1, 3))
    if rng.random() < 2 / 3:
        groups.append(rng.choice(sorted(entries[f"https://svc{n}-as.example.com"]["group_grants"])))
    tenant = rng.choice(TENANTS)
    wants = rng.choice([[], [f"svc{n}.read"], [f"svc{n}.read", f"svc{n}.write"], [f"svc{n}.admin"]])
    sub = f"user{rng.randrange(5000)}"
    return {
        "subject": {
            "iss": "https://idp.example.com",
            "sub": sub,
            "client_id": "agent-app",
            "tenant": tenant,
            "email": f"{sub}@example.com",
            "groups": groups,
            "acr": rng.choice(["", "urn:example:acr:mfa"]),
            "amr": ["pwd"],
            "auth_time": NOW - rng.randrange(3600),
            "claims": {
                "sub": sub,
                "email": f"{sub}@example.com",
                "groups": groups,
                "tenant": tenant,
            },
        },
        "actor": None,
        "caller": {"id": "", "spiffe_id": "", "authenticated_by": "none"},
        "request": {
            "audience": f"https://svc{n}-as.example.com",
            "resources": [],
            "scopes": wants,
            "requested_token_type": "urn:ietf:params:oauth:token-type:id-jag",
            "subject_token_type": "urn:ietf:params:oauth:token-type:id_token",
            "lifetime_seconds": 0,
            "context": {},
        },
        "now": NOW,
    }


def policy_folder(target: Path, data: dict[str, Any]) -> Path:
    """The shipped modules and (empty) denylist.json / consents.json, with the generated
    registry.json in place of the shipped one."""
    shutil.copytree(REPO / "policies" / "sekisho", target / "sekisho")
    shutil.copytree(REPO / "policies" / "data", target / "data")
    (target / "data" / "registry.json").write_text(json.dumps(data))
    return target


def opa_binary() -> str:
    """opa on PATH, else the project's bin/opa (`make setup`), wherever the bench runs from."""
    return shutil.which("opa") or str(REPO / "bin" / "opa")


def start_opa(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [opa_binary(), "run", "--server", "--addr", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = lambda: http_ok(f"{url}/health")  # noqa: E731
        wait_until(ready, name="opa", process=process, seconds=10, interval=0.05)
    except ServerStartError as error:
        process.kill()
        raise SystemExit(str(error)) from error
    return process, url


async def timed(
    decide: Callable[[dict[str, Any]], Awaitable[Decision]], docs: list[dict[str, Any]]
) -> tuple[list[float], list[Decision]]:
    """Microseconds per decision, one decision at a time, and the decisions."""
    samples, decisions = [], []
    for doc in docs:
        started = time.perf_counter_ns()
        decision = await decide(doc)
        samples.append((time.perf_counter_ns() - started) / 1000)
        decisions.append(decision)
    return samples, decisions


def raw_evaluations(
    engine: WasmPolicyEngine, docs: list[dict[str, Any]], warmup: int
) -> tuple[list[float], list[Any]]:
    """Microseconds per `evaluate_raw` (no decision parsing, no decision id), and the values."""
    for doc in docs[:warmup]:
        engine.evaluate_raw(doc)
    samples, results = [], []
    for doc in docs[warmup:]:
        started = time.perf_counter_ns()
        results.append(engine.evaluate_raw(doc))
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples, results


def opa_py_wasm(
    python: str, engine: WasmPolicyEngine, docs: list[dict[str, Any]], warmup: int, tmp: Path
) -> tuple[list[float], list[Any]]:
    """The same module, data and inputs through the opa-py-wasm SDK in its own interpreter."""
    folder = tmp / "opa-py-wasm"
    folder.mkdir()
    (folder / "policy.wasm").write_bytes(engine.policy.compiled.wasm)
    (folder / "data.json").write_bytes(engine.policy.data)
    (folder / "inputs.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    probe = REPO / "bench" / "opa_py_wasm_probe.py"
    completed = subprocess.run(
        [python, str(probe), str(folder), str(warmup)], capture_output=True, text=True, check=True
    )
    output = json.loads(completed.stdout)
    return output["samples_us"], output["results"]


async def cache_hits(engine: WasmPolicyEngine, docs: list[dict[str, Any]]) -> list[float]:
    """Microseconds per decision-cache hit: each input asked twice, the second ask timed, for
    the inputs whose decision the policy made cacheable (cache_ttl_seconds > 0)."""
    cache = CachingPolicyEngine(engine, SystemClock(), max_entries=len(docs))
    samples = []
    for doc in docs:
        if (await cache.decide(doc)).cache_ttl_seconds > 0:
            started = time.perf_counter_ns()
            await cache.decide(doc)
            samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median": statistics.median(ordered),
        "p90": ordered[int(0.90 * (len(ordered) - 1))],
        "p99": ordered[int(0.99 * (len(ordered) - 1))],
        "mean": statistics.fmean(ordered),
        "max": ordered[-1],
    }


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    version = subprocess.run([opa_binary(), "version"], capture_output=True, text=True, check=False)
    first = version.stdout.splitlines()[0] if version.stdout else "Version: ?"
    opa = "OPA " + first.split(":", 1)[-1].strip()
    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, wasmtime {package_version('wasmtime')}, "
        f"{opa}"
    )


def outcome(decision: Decision) -> tuple[Any, ...]:
    return (
        decision.allow,
        decision.error,
        decision.scopes,
        decision.ttl_seconds,
        decision.acr_values,
    )


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=10_000)
    parser.add_argument("--downstreams", type=int, default=1_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--opa-py-wasm-python", default="")
    parser.add_argument(
        "--baseline",
        default="",
        help="a git revision: its embedded engine and the working tree's, side by side",
    )
    return parser.parse_args()


async def main() -> None:
    args = arguments()
    rng = random.Random(20261123)  # noqa: S311 - reproducible test data, not secrets
    data = registry(args.downstreams, rng)
    docs = [document(rng, data) for _ in range(args.warmup + args.decisions)]
    with tempfile.TemporaryDirectory() as tmp:
        root = policy_folder(Path(tmp) / "policies", data)
        started = time.perf_counter()
        policy = PolicyConfig()
        embedded = WasmPolicyEngine(
            root, QUERY, Path(opa_binary()), wasm_limits(policy),
            compile_timeout=policy.compile_timeout_seconds,
        )  # fmt: skip
        embedded.load()
        build_s = time.perf_counter() - started
        process, url = start_opa(Path(tmp) / "opa.log")
        opa = OpaPolicyEngine(
            OpaApi(url, 5.0),
            root,
            QUERY,
            manage=True,
            timeout_seconds=5.0,
            check_interval_seconds=3600,
            failures=LoopFailures(not_counted),
        )
        try:
            started = time.perf_counter()
            await opa.start()
            publish_s = time.perf_counter() - started
            results = {}
            for name, engine in (("embedded (Wasm)", embedded), ("OPA server (REST)", opa)):
                await timed(engine.decide, docs[: args.warmup])
                results[name] = await timed(engine.decide, docs[args.warmup :])
            hits = await cache_hits(embedded, docs[args.warmup :])
            raw = raw_evaluations(embedded, docs, args.warmup)
            sdk = None
            if args.opa_py_wasm_python:
                sdk = opa_py_wasm(args.opa_py_wasm_python, embedded, docs, args.warmup, Path(tmp))
            side_by_side = None
            if args.baseline:
                os.environ.setdefault("SEKISHO_AB_OPA", opa_binary())
                side_by_side = policy_ab.compare(
                    REPO, args.baseline, root, docs, warmup=args.warmup, tmp=Path(tmp)
                )
        finally:
            await opa.close()
            stop_process(process, timeout=10)
    (_, emb), (_, via_opa) = results.values()
    differ = sum(outcome(a) != outcome(b) for a, b in zip(emb, via_opa, strict=True))
    kinds = Counter("allow" if d.allow else d.error for d in emb)
    print(f"machine: {machine()}")
    print(
        f"registry: {args.downstreams} downstreams; {args.decisions} decisions per engine "
        f"after {args.warmup} warm-up, one at a time; outcomes {dict(sorted(kinds.items()))}"
    )
    print(
        f"embedded opa build + load {build_s * 1000:.0f} ms; "
        f"OPA publish + self-test {publish_s * 1000:.0f} ms"
    )
    report(results, raw, sdk, hits)
    if side_by_side is not None:
        print("\n".join(policy_ab.report(side_by_side)))
    print(f"load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"decisions that differ between the engines: {differ} of {len(emb)}")
    if differ:
        sys.exit(1)


def report(results: dict[str, Any], raw: Any, sdk: Any, hits: list[float]) -> None:
    """Print the latency table: each engine, raw evaluation, opa-py-wasm and the decision cache."""
    print(f"{'engine':<20}{'median µs':>11}{'p90 µs':>9}{'p99 µs':>9}{'mean µs':>9}{'max µs':>10}")
    for name, (samples, _) in results.items():
        s = summary(samples)
        print(
            f"{name:<20}{s['median']:>11.0f}{s['p90']:>9.0f}{s['p99']:>9.0f}{s['mean']:>9.0f}{s['max']:>10.0f}"
        )
    raw_samples, raw_results = raw
    s = summary(raw_samples)
    print(
        f"{'embedded raw eval':<20}{s['median']:>11.0f}{s['p90']:>9.0f}{s['p99']:>9.0f}"
        f"{s['mean']:>9.0f}{s['max']:>10.0f}  (evaluate_raw: encode + opa_eval + result)"
    )
    if sdk is not None:
        sdk_samples, sdk_results = sdk
        s = summary(sdk_samples)
        print(
            f"{'opa-py-wasm 1.2.1':<20}{s['median']:>11.0f}{s['p90']:>9.0f}{s['p99']:>9.0f}"
            f"{s['mean']:>9.0f}{s['max']:>10.0f}  (OpaWasmPolicy.evaluate, pool 1, same wasm)"
        )
        sdk_differ = sum(a != b for a, b in zip(raw_results, sdk_results, strict=True))
        print(f"raw results that differ between embedded and opa-py-wasm: {sdk_differ}")
    s = summary(hits)
    print(
        f"{'decision-cache hit':<20}{s['median']:>11.1f}{s['p90']:>9.1f}{s['p99']:>9.1f}"
        f"{s['mean']:>9.1f}{s['max']:>10.0f}  ({len(hits)} cacheable grants, second ask)"
    )


if __name__ == "__main__":
    asyncio.run(main())
