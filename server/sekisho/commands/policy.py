"""`sekisho policy eval|test|check|impact|build`: the policy author's commands
(docs/policy-authors.md).

All of them work on the folder `[policy] path` as the service reads it, whatever the engine.
`impact` is in policy_impact.py, `build` (and its checks of the bundle) in policy_build.py.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sekisho.clock import SystemClock
from sekisho.commands import policy_build, policy_impact
from sekisho.config import Settings
from sekisho.errors import PolicyLoadError
from sekisho.policy.schema import input_problems

if TYPE_CHECKING:
    from sekisho.policy.wasm.engine import WasmPolicyEngine

from sekisho.policy.toolchain import (
    OpaToolchain,
    PolicyFolder,
    eval_value,
    find_opa,
    find_regal,
    producing_rule,
    run_binary,
)


def register(
    sub: "argparse._SubParsersAction[argparse.ArgumentParser]", common: argparse.ArgumentParser
) -> None:
    policy = sub.add_parser("policy", parents=[common], help="policy author tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    evaluate = policy_sub.add_parser(
        "eval",
        parents=[common],
        help="print the decision for an input, and the rule that produced it (needs opa)",
    )
    evaluate.add_argument(
        "--input",
        required=True,
        help="JSON input document, checked against schemas/input.json of the policy folder",
    )
    policy_sub.add_parser(
        "test",
        parents=[common],
        help="opa test with coverage, then the decision corpus through the embedded engine",
    )
    policy_build.register(policy_sub, common)
    policy_sub.add_parser(
        "check",
        parents=[common],
        help="opa fmt, opa check --strict, regal lint (if installed), the embedded engine's load",
    )
    policy_impact.register(policy_sub, common)


def run(args: argparse.Namespace, settings: Settings) -> int:
    commands = {
        "eval": _eval,
        "test": _test,
        "check": _check,
        "impact": policy_impact.run,
        "build": policy_build.run,
    }
    return commands[args.policy_command](args, settings)


def _toolchain(settings: Settings) -> OpaToolchain:
    return OpaToolchain(find_opa(settings.policy.opa_binary, Path.cwd()))


def _embedded(settings: Settings) -> "WasmPolicyEngine":
    """The folder loaded exactly as `sekisho serve` loads it. Raises: PolicyLoadError."""
    from sekisho.policy_components import folder_engine

    engine = folder_engine(settings.policy, Path.cwd(), SystemClock())
    engine.load()
    return engine


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    document = _read_input(args.input)
    if not isinstance(document, dict):
        raise ValueError(f"{args.input}: the input must be a JSON object")  # noqa: TRY004 - the CLI reports ValueError
    problems = input_problems(document, settings.policy.path)
    if problems:
        print(f"sekisho: {args.input} is not a policy input document:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        case = _corpus_case_name(document)
        if case is not None:
            print(
                f"  it is a decision corpus case: evaluate its input, `jq '.{case}.input'"
                f" {shlex.quote(args.input)} > input.json`",
                file=sys.stderr,
            )
        return 2
    decision = _embedded(settings).evaluate_raw(document)
    print(json.dumps(decision, indent=2, sort_keys=True))
    toolchain = _toolchain(settings)
    folder = PolicyFolder(settings.policy.path)
    output = toolchain.evaluate(folder, settings.policy.query, document, explain=True)
    rule = producing_rule(output, settings.policy.query)
    print(f"rule: {rule or 'none matched: the default value'}", file=sys.stderr)
    if eval_value(output) != decision:
        opa = json.dumps(eval_value(output), sort_keys=True)
        print(f"engines differ: OPA decides {opa}", file=sys.stderr)
        return 1
    return 0


def _corpus_case_name(document: dict[str, Any]) -> str | None:
    """The case's name when `document` is a whole corpus case file ({name: {input, expected}}),
    which a newcomer passes to eval as it is (docs/policy-authors.md shows the jq for it)."""
    if len(document) != 1:
        return None
    [(name, case)] = document.items()
    if isinstance(case, dict) and "input" in case and "expected" in case:
        return name
    return None


def _read_input(path: str) -> Any:
    """The --input document, with errors that name the file: json's own message ("Expecting
    property name enclosed in double quotes: line 1 column 2") named nothing (newcomer run,
    session 19). Raises: ValueError (not readable, or not JSON)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the input: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: the input is not UTF-8 JSON ({exc.reason})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: the input is not JSON: {exc}") from exc


def _test(args: argparse.Namespace, settings: Settings) -> int:
    from sekisho.policy.corpus import load_cases
    from sekisho.policy.replay import replay_embedded
    from sekisho.policy.source import load_source

    toolchain = _toolchain(settings)
    folder = PolicyFolder(settings.policy.path)
    tested = toolchain.run(["test", *folder.test_args()])
    print("== opa test")
    print((tested.stdout + tested.stderr).strip())
    failed = tested.returncode != 0
    if failed:  # coverage of a failing run would measure tests that did not pass
        print("== coverage: not run, opa test failed")
    else:
        covered = toolchain.run(["test", "--coverage", "--format", "json", *folder.test_args()])
        print(_coverage_summary(json.loads(covered.stdout), folder.root))
    cases = load_cases(folder.root)
    try:
        policy = _embedded(settings).policy
    except PolicyLoadError as exc:
        # A module that does not compile is a failed test like any other (exit 1, as the docs
        # say), not a command error (exit 2 with opa test's errors printed a second time).
        print(f"== decision corpus, embedded engine: not run, the folder does not load\n  {exc}")
        return 1
    results = replay_embedded(cases, load_source(folder.root), policy)
    mismatched = [result for result in results if not result.matches]
    print(f"== decision corpus, embedded engine: {len(results) - len(mismatched)}/{len(results)}")
    for result in mismatched:
        print(f"  {result.case.name}")
        print(f"    expected {json.dumps(result.case.expected, sort_keys=True)}")
        print(f"    got      {json.dumps(result.actual, sort_keys=True)}")
    return 1 if failed or mismatched or not results else 0


def _coverage_summary(report: dict[str, Any], root: Path) -> str:
    lines = [f"== coverage: {report.get('coverage', 0):.1f}% of all Rego lines"]
    for name, entry in sorted(report.get("files", {}).items()):
        if name.endswith("_test.rego"):
            continue
        spans = {(r["start"]["row"], r["end"]["row"]) for r in entry.get("not_covered", [])}
        gaps = [f"{a}" if a == b else f"{a}-{b}" for a, b in sorted(spans)]
        tail = f" (not covered: lines {', '.join(gaps)})" if gaps else ""
        shown = Path(name).resolve().relative_to(root.resolve())
        lines.append(f"  {shown}: {entry.get('coverage', 0):.1f}%{tail}")
    return "\n".join(lines)


def _check(args: argparse.Namespace, settings: Settings) -> int:
    toolchain = _toolchain(settings)
    folder = PolicyFolder(settings.policy.path)
    every_module = [str(p) for p in sorted(folder.root.rglob("*.rego"))]
    steps = [
        ("opa fmt --diff", toolchain.run(["fmt", "--diff", "--fail", *every_module])),
        ("opa check --strict", toolchain.run(folder.check_args())),
    ]
    regal = find_regal(toolchain.opa)
    if regal is not None:
        steps.append(("regal lint", run_binary(regal, ["lint", str(folder.root)])))
    failed = False
    for title, completed in steps:
        output = (completed.stdout + completed.stderr).strip()
        status = "ok" if completed.returncode == 0 else "FAILED"
        print(f"== {title}: {status}" + (f"\n{output}" if output else ""))
        failed |= completed.returncode != 0
    if regal is None:
        print("== regal lint: skipped (regal not installed; `make regal` puts it in bin/)")
    return 1 if _check_embedded(settings) or failed else 0


def _check_embedded(settings: Settings) -> bool:
    """Load the folder as the service does: Wasm build, host builtins, self-test. True = failed."""
    title = "embedded engine (opa build -t wasm, host builtins, self-test)"
    try:
        _embedded(settings)
    except PolicyLoadError as exc:
        print(f"== {title}: FAILED\n  {exc}")
        return True
    print(f"== {title}: ok")
    return False
