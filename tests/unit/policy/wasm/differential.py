"""Differential checks of host builtins: the same module evaluated by `opa eval` (OPA's Go
implementation) and by the embedded engine (OPA's Wasm compiler + Sekisho's host builtins)."""

import json
import subprocess
from pathlib import Path
from typing import Any

from sekisho.clock import Clock, SystemClock
from sekisho.policy.wasm.compiler import compile_folder
from sekisho.policy.wasm.policy import LoadedPolicy, compile_module, encode_json

from tests.bounds import wasm_limits
from tests.embedded import shared_runtime
from tests.opa import opa_binary

PACKAGE = "package differential\n\nimport rego.v1\n\n"
QUERY = "data.differential.results"


def module_folder(tmp: Path, body: str) -> Path:
    root = tmp / "policy"
    root.mkdir(parents=True, exist_ok=True)
    (root / "differential.rego").write_text(PACKAGE + body)
    return root


def opa_eval(root: Path, document: Any) -> Any:
    """The query's value under `opa eval` (None when undefined)."""
    completed = subprocess.run(
        [str(opa_binary()), "eval", "--format", "json", "-d", str(root), "--stdin-input", QUERY],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"opa eval failed: {completed.stdout[:2000]} {completed.stderr[:2000]}"
        )
    results = json.loads(completed.stdout).get("result") or []
    return results[0]["expressions"][0]["value"] if results else None


def wasm_policy(root: Path, clock: Clock | None = None) -> LoadedPolicy:
    """`clock`: what time.now_ns() reads (the wall clock, as `opa eval`'s, by default)."""
    entrypoint = QUERY.removeprefix("data.").replace(".", "/")
    wasm = compile_folder(opa_binary(), root, entrypoint, 120.0)
    limits = wasm_limits(eval_timeout_seconds=10.0)
    compiled = compile_module(shared_runtime(), wasm, entrypoint, limits, clock or SystemClock())
    return LoadedPolicy(shared_runtime(), compiled, b"{}", limits)


def both(tmp: Path, body: str, document: Any) -> tuple[Any, Any]:
    """(OPA's value, the embedded engine's value) of `results` in `body` for `document`."""
    root = module_folder(tmp, body)
    return opa_eval(root, document), wasm_policy(root).evaluate(encode_json(document))


def mismatches(expected: Any, actual: Any, cases: list[Any]) -> list[str]:
    """Readable differences between two `{index: value}` result objects."""
    expected, actual = expected or {}, actual or {}
    out = []
    for key in sorted(set(expected) | set(actual), key=int):
        if expected.get(key) != actual.get(key):
            out.append(f"{cases[int(key)]!r}: opa {expected.get(key)!r}, wasm {actual.get(key)!r}")
    return out
