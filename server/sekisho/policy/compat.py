"""Where the embedded engine (regopy, rego-cpp) and OPA would disagree on a policy folder.

Static findings for `sekisho policy check`: the folder must compile in regopy as it does in OPA
(regopy rejects some valid Rego, e.g. a rule body that is a bare `every`), every builtin called
must exist in regopy (a missing one evaluates to undefined, silently), both engines must give
the same self-test decision, and calls to builtins known to behave differently are pointed out.
The decision corpus (`sekisho policy test`, pytest) is the behavioural check.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regopy

from sekisho.errors import PolicyLoadError
from sekisho.policy.rego import compile_policy
from sekisho.policy.selftest import SELF_TEST_INPUT
from sekisho.policy.source import load_source
from sekisho.policy.toolchain import OpaToolchain, PolicyFolder, eval_value

# Builtins both engines have but that give different results on some inputs (measured with
# regopy 1.5.2 and OPA 1.22; docs/policy-authors.md lists them).
CAUTIONS = {
    "min": "regopy orders numbers as strings (min({300, 60}) is 300)",
    "max": "regopy orders numbers as strings (max({300, 60}) is 60)",
    "sort": "regopy orders numbers as strings (sort([300, 60]) is [300, 60])",
    "object.union": "regopy merges only the top level; OPA merges nested objects recursively",
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference: `error` fails the check, `note` is for the author to judge."""

    severity: str
    message: str


def engine_differences(folder: PolicyFolder, toolchain: OpaToolchain, query: str) -> list[Finding]:
    """Every finding for the folder's modules (tests excluded, as the service loads them)."""
    modules = [p for p in folder.rego_files() if not p.name.endswith("_test.rego")]
    calls = [call for module in modules for call in _builtin_calls(toolchain.parse(module))]
    findings = _missing_builtins(calls, toolchain.builtins())
    findings += _cautions(calls)
    findings += _compile_and_self_test(folder, toolchain, query)
    return findings


def _missing_builtins(calls: list[tuple[str, str]], opa: dict[str, Any]) -> list[Finding]:
    interpreter = regopy.Interpreter()
    missing: dict[str, list[str]] = {}
    for name, where in calls:
        entry = opa.get(name)
        if entry is None or "infix" in entry or name.startswith("internal."):
            continue  # a user function, or an operator both engines implement
        if not interpreter.is_builtin(name):
            missing.setdefault(name, []).append(where)
    return [
        Finding(
            "error",
            f"regopy has no builtin {name} (used at {', '.join(places)}): "
            "the embedded engine evaluates it as undefined",
        )
        for name, places in sorted(missing.items())
    ]


def _cautions(calls: list[tuple[str, str]]) -> list[Finding]:
    places: dict[str, list[str]] = {}
    for name, where in calls:
        if name in CAUTIONS:
            places.setdefault(name, []).append(where)
    return [
        Finding("note", f"{name} at {', '.join(sorted(set(where)))}: {CAUTIONS[name]}")
        for name, where in sorted(places.items())
    ]


def _compile_and_self_test(
    folder: PolicyFolder, toolchain: OpaToolchain, query: str
) -> list[Finding]:
    try:
        policy = compile_policy(load_source(folder.root), query)
        embedded = policy.evaluate(SELF_TEST_INPUT)
    except PolicyLoadError as exc:
        return [Finding("error", f"regopy rejects what OPA may accept: {exc}")]
    except (regopy.RegoError, ValueError) as exc:
        return [Finding("error", f"regopy fails to evaluate the self-test input: {exc}")]
    opa = eval_value(toolchain.evaluate(folder, query, SELF_TEST_INPUT))
    if embedded != opa:
        return [Finding("error", f"self-test decision differs: regopy {embedded}, OPA {opa}")]
    return []


def _builtin_calls(ast: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(name, file:row) of every call in a module's AST: call terms, and expressions whose
    terms are an operator followed by its operands."""
    for node in _nodes(ast):
        if node.get("type") == "call":
            operator = node["value"][0]
        elif isinstance(node.get("terms"), list) and node["terms"]:
            operator = node["terms"][0]
        else:
            continue
        name = _ref_name(operator)
        if name is not None:
            where = operator.get("location") or node.get("location") or {}
            yield name, f"{Path(where.get('file', '?')).name}:{where.get('row', '?')}"


def _nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from _nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from _nodes(child)


def _ref_name(term: Any) -> str | None:
    """`object.get` for the ref term object.get; None for anything else."""
    if not isinstance(term, dict) or term.get("type") != "ref":
        return None
    parts = []
    for index, part in enumerate(term["value"]):
        wanted = "var" if index == 0 else "string"
        if part.get("type") != wanted:
            return None
        parts.append(str(part["value"]))
    return ".".join(parts)
