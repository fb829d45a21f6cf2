"""regex.globs_match in the embedded engine matches `opa eval` (glob-intersection v0.2.0's
NonEmpty) on generated pairs of globs: characters, dots, sets with ranges and escapes, `+` and
`*` flags, globs that do not tokenize, and pairs derived from each other so that both answers
are common."""

import json
import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins import globintersect
from sekisho.policy.wasm.builtins.registry import BuiltinError
from sekisho.policy.wasm.instance import WasmEvaluationError

from tests.unit.policy.wasm.differential import (
    both,
    mismatches,
    module_folder,
    opa_eval,
    wasm_policy,
)

BODY = "results := {i: regex.globs_match(c[0], c[1]) | some i, c in input.cases}\n"
ATOMS = ["a", "a", "b", "b", "c", "é", ".", ".", "[ab]", "[a-c]", "[b-d]", "[]", "[\\]a]"]
ATOMS += ["\\.", "\\*", "\\[", "\\\\", "-", "[a\\-c]", "[\u00e0-\u00ff]", "[ca]"]
FLAGS = ["", "", "", "*", "+"]
BROKEN = ["]", "*a", "a**", "a*+", "[a", "a\\", "[-a]", "[a-]", "[c-a]", "[a-c-e]", "[a-\\"]
BROKEN += ["+", "[a-]]", "[a--]", "[-\\-]"]


def glob(rng: random.Random) -> str:
    text = "".join(rng.choice(ATOMS) + rng.choice(FLAGS) for _ in range(rng.randint(0, 5)))
    if rng.random() < 0.06:
        i = rng.randint(0, len(text))
        text = text[:i] + rng.choice(BROKEN) + text[i:]
    return text


def derived(rng: random.Random, text: str) -> str:
    """`text` with a flag, a dot or a set put in, or a character dropped: often intersecting."""
    if not text:
        return rng.choice(["", ".*", "a*", ".+"])
    i = rng.randint(0, len(text))
    return text[:i] + rng.choice([".*", ".", "*", "+", "[a-z]", "", "a"]) + text[i + 1 :]


def pair(rng: random.Random) -> list[Any]:
    first = glob(rng)
    second = derived(rng, first) if rng.random() < 0.5 else glob(rng)
    return [first, second] if rng.random() < 0.5 else [second, first]


@pytest.mark.parametrize("seed", [71, 72, 73])
def test_globs_match_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [pair(rng) for _ in range(1500)] + [[1, "a"], ["a", None]]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:40])
    outcomes = list(expected.values())
    assert outcomes.count(True) > 300 and outcomes.count(False) > 500  # both answers compared
    assert len(outcomes) < len(cases) - 200  # and globs that do not tokenize (undefined)


EDGE_CASES = [
    ["", ""],  # the empty intersection of empty globs: NonEmpty says true
    ["", "a*"],
    ["a*", "b*"],  # only the empty string in common: false
    ["ab", "a*"],
    ["a.c", ".b."],
    ["[ab]+c", "[bc]+"],
    ["a*a*a*", "a+"],  # simplified to a+
    ["a+a*", "aaa"],
    ["a.+.*b", "ab"],  # .+.* simplified to .+ (not .*): no intersection
    ["[]", "a"],  # an empty set matches nothing ...
    ["[]", "."],  # ... but a dot matches every set
    ["[]*", "[]+"],
    ["[z-z]", "z"],
    ["[\u00e0-\u00ff]", "é"],
    ["\\*", "*"],  # `*` alone does not tokenize
    ["\\*", "a"],
    ["a\\", "a"],
    ["[a-c]", "[c-e]"],
    ["[ab]*", "[ba]+"],
    [".*", ""],
    [".+", "x"],
    ["x*y*z", "xyz"],
    ["a*b", "b*a"],
    ["[a-]", "a"],
    ["[-a]", "a"],
    ["[\\-a]", "-"],
    ["[a-\\]]", "b"],  # `]` (escaped) sorts before `a`: out of order
    ["[\\]-a]", "b"],
    ["😀+", "😀😀"],  # code points, not bytes
]


def test_globs_match_edge_cases_match_opa(tmp_path: Path) -> None:
    expected, actual = both(tmp_path, BODY, {"cases": EDGE_CASES})
    assert mismatches(expected, actual, EDGE_CASES) == []
    undefined = [EDGE_CASES[i][0] for i in range(len(EDGE_CASES)) if str(i) not in expected]
    assert undefined == ["\\*", "a\\", "[a-]", "[-a]", "[a-\\]]"]  # the ones that do not tokenize


def test_a_glob_pair_past_the_step_bound_traps(tmp_path: Path) -> None:
    """The walk is exponential in the number of flags (this pair: 3,244,576 steps, against 44,444
    with two `.*a` fewer): past MAX_STEPS the call fails the evaluation (a deny) rather than hold
    the worker for as long as OPA computes."""
    lhs, rhs = ".*a" * 5 + "b.*", "a" * 40 + "c"
    assert globintersect.non_empty(".*a" * 3 + "b.*", rhs) is False  # within the bound
    with pytest.raises(globintersect.GlobTooComplexError):
        globintersect.non_empty(lhs, rhs)
    root = module_folder(tmp_path, "results := regex.globs_match(input.a, input.b)\n")
    assert opa_eval(root, {"a": lhs, "b": rhs}) is False
    with pytest.raises(WasmEvaluationError, match="steps"):
        wasm_policy(root).evaluate(json.dumps({"a": lhs, "b": rhs}).encode())


def test_a_long_glob_under_stars_cannot_cost_quadratic_comparisons(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A star scans the rest of the other glob at every position its follower matches, so
    `.*a.*b.*c` against `a` * n + `c` (n a claim's length) costs n²/2 token comparisons in 2n
    calls: counting only calls let 9,000 characters hold a worker for 22 s of CPU within the
    bound. Each comparison is a step, so the walk traps after at most MAX_STEPS of them."""
    compared = 0
    real_match = globintersect.match

    def counting_match(t1: globintersect.Token, t2: globintersect.Token) -> bool:
        nonlocal compared
        compared += 1
        return real_match(t1, t2)

    monkeypatch.setattr(globintersect, "match", counting_match)
    n = 4 * globintersect.MAX_STEPS // 100  # 2n calls (within the bound), n²/2 comparisons
    with pytest.raises(globintersect.GlobTooComplexError):
        globintersect.non_empty(".*a.*b.*c", "a" * n + "c")
    assert compared <= 2 * globintersect.MAX_STEPS


def test_a_glob_that_does_not_tokenize_is_a_builtin_error() -> None:
    with pytest.raises(BuiltinError):
        globintersect.non_empty("a**", "a")
