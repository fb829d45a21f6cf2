"""Every host builtin against `opa eval`, on generated inputs concentrated on edges.

One module calls each builtin over one array of the input (`{i: f(c) | some i, c in
input.<family>}`); the input is written by hand so that number texts (`1e1`, `-0`, `1E21`,
`1.0`, 2^63, 1e400) reach both engines as written. `opa eval` (bin/opa, OPA's Go builtins)
evaluates it once; the embedded engine (OPA's Wasm compiler + Sekisho's host builtins)
evaluates it once, and a family whose evaluation traps is evaluated again case by case, so a
trap (a deny: a documented fail-closed case) is told apart from a different value.

    PATH=bin:$PATH .venv/bin/python bench/builtins_differential.py [--seed 10] [--scale 1] \\
        [--only time.add_date] [--show 20]

Prints, per family, the cases, how many OPA answered (defined), how many differ and how many
the embedded engine trapped on (with the first few of each); exit 1 if any value differs.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import builtins_cases
from sekisho.clock import SystemClock
from sekisho.config import PolicyConfig
from sekisho.policy.wasm.compiler import compile_folder
from sekisho.policy.wasm.instance import WasmEvaluationError
from sekisho.policy.wasm.policy import LoadedPolicy, compile_module
from sekisho.policy.wasm.runtime import WasmRuntime
from sekisho.policy_components import wasm_limits

REPO = Path(__file__).resolve().parent.parent
QUERY = "data.differential.results"
Family = builtins_cases.Family


def module_text(families: list[Family]) -> str:
    rules = []
    for family in families:
        expression = family.expression.replace("V(", f'v("{family.name}", i, ')
        rules.append(
            f'\t"{family.name}": {{i: {expression} | some i, c in input["{family.name}"]}}'
        )
    body = ",\n".join(rules)
    header = f"package differential\n\nimport rego.v1\n\n{builtins_cases.PRELUDE}"
    return f"{header}results := {{\n{body},\n}}\n"


def input_text(families: list[Family], only: str | None = None) -> bytes:
    """The input document, each case's JSON text kept as generated."""
    parts = []
    for family in families:
        cases = family.cases if only in (None, family.name) else []
        parts.append(json.dumps(family.name) + ": [" + ",\n".join(cases) + "]")
    return ("{" + ",\n".join(parts) + "}").encode()


def case_input(family: Family, families: list[Family], index: int) -> bytes:
    parts = [
        json.dumps(f.name) + ": [" + (f.cases[index] if f is family else "") + "]" for f in families
    ]
    return ("{" + ",".join(parts) + "}").encode()


def opa_results(opa: Path, root: Path, document: bytes) -> dict[str, Any]:
    completed = subprocess.run(
        [str(opa), "eval", "--format", "json", "-d", str(root), "--stdin-input", QUERY],
        input=document,
        capture_output=True,
        check=False,
        timeout=1800,
    )
    if completed.returncode != 0:
        raise SystemExit(
            f"opa eval failed: {completed.stdout[:3000]!r} {completed.stderr[:3000]!r}"
        )
    results = json.loads(completed.stdout).get("result") or []
    value: dict[str, Any] = results[0]["expressions"][0]["value"]
    return value


def wasm_policies(opa: Path, root: Path) -> Callable[[], LoadedPolicy]:
    """The module compiled once; each call loads a fresh policy (instances) from it."""
    entrypoint = QUERY.removeprefix("data.").replace(".", "/")
    wasm = compile_folder(opa, root, entrypoint, 600.0)
    limits = wasm_limits(PolicyConfig())
    runtime = WasmRuntime(cached_modules=1)
    compiled = compile_module(runtime, wasm, entrypoint, limits, SystemClock())
    return lambda: LoadedPolicy(runtime, compiled, b"{}", limits)


# Before commit 31dee7d a trapped instance went back to the pool and broke after 4,094 traps;
# a fresh policy every 1,000 traps keeps a run against such a base measuring the builtins.
_TRAPS_PER_POLICY = 1_000


def wasm_results(
    fresh: Callable[[], LoadedPolicy], families: list[Family]
) -> dict[str, dict[str, Any]]:
    """Per family: {index: value}, with "<trap: …>" where evaluating that case alone traps."""
    out: dict[str, dict[str, Any]] = {}
    policy, traps = fresh(), 0
    for family in families:
        try:
            out[family.name] = policy.evaluate(input_text(families, family.name))[family.name]
            continue
        except WasmEvaluationError:
            traps += 1
        values: dict[str, Any] = {}
        for index in range(len(family.cases)):
            if traps >= _TRAPS_PER_POLICY:
                policy, traps = fresh(), 0
            try:
                value = policy.evaluate(case_input(family, families, index))[family.name]
            except WasmEvaluationError as exc:
                values[str(index)] = f"<trap: {str(exc)[:160]}>"
                traps += 1
                continue
            if "0" in value:
                values[str(index)] = value["0"]
        out[family.name] = values
    return out


def compare(family: Family, expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    differ, traps = [], []
    for key in sorted(set(expected) | set(actual), key=int):
        want, got = expected.get(key), actual.get(key)
        if isinstance(got, str) and got.startswith("<trap: "):
            traps.append(f"{family.cases[int(key)]} -> opa {want!r}, wasm {got}")
        elif json.dumps(want, sort_keys=True) != json.dumps(got, sort_keys=True):  # 1 ≠ true
            differ.append(f"{family.cases[int(key)]} -> opa {want!r}, wasm {got!r}")
    return {
        "cases": len(family.cases),
        "defined": len(expected),
        "differ": differ,
        "traps": traps,
    }


def main() -> int:
    sys.set_int_max_str_digits(0)  # units.parse_bytes("1e999999") is 10^999999 in OPA
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=10)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", action="append", help="family name prefix (repeatable)")
    parser.add_argument("--show", type=int, default=8)
    parser.add_argument("--opa", type=Path, default=REPO / "bin" / "opa")
    args = parser.parse_args()
    families = builtins_cases.families(args.seed, args.scale)
    if args.only:
        families = [f for f in families if any(f.name.startswith(p) for p in args.only)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "policy"
        root.mkdir()
        (root / "differential.rego").write_text(module_text(families))
        expected = opa_results(args.opa, root, input_text(families))
        actual = wasm_results(wasm_policies(args.opa, root), families)
    total = {"cases": 0, "defined": 0, "differ": 0, "traps": 0}
    print(f"{'family':34} {'cases':>7} {'defined':>7} {'differ':>6} {'traps':>6}")
    failed = False
    for family in families:
        row = compare(family, expected.get(family.name) or {}, actual.get(family.name) or {})
        for key in total:
            total[key] += row[key] if isinstance(row[key], int) else len(row[key])
        print(
            f"{family.name:34} {row['cases']:7} {row['defined']:7} "
            f"{len(row['differ']):6} {len(row['traps']):6}"
        )
        show: Callable[[str], None] = lambda line: print("    " + line[:400])  # noqa: E731
        for line in row["differ"][: args.show]:
            show("DIFF " + line)
        for line in row["traps"][: args.show]:
            show("TRAP " + line)
        failed = failed or bool(row["differ"])
    print(
        f"{'total':34} {total['cases']:7} {total['defined']:7} "
        f"{total['differ']:6} {total['traps']:6}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
