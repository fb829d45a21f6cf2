"""urlquery.encode_object matches `opa eval` on generated objects: string, array and set values
(sets in OPA's order), empty arrays, characters url.QueryEscape escapes, keys sorted by bytes,
and values OPA refuses (undefined)."""

import json
import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.instance import WasmEvaluationError

from tests.unit.policy.wasm.differential import (
    both,
    mismatches,
    module_folder,
    opa_eval,
    wasm_policy,
)

BODY = """results := {i: urlquery.encode_object(operand(c)) | some i, c in input.cases}

operand(c) := c.o if not c.sets

operand(c) := {k: as_set(x) | some k, x in c.o} if c.sets

as_set(x) := {e | some e in x} if is_array(x)

as_set(x) := x if not is_array(x)
"""
PIECES = ["a", "B", " ", "&", "=", "+", "%", "~", "-", "_", ".", "/", "?", "é", "😀", "Z", "a b"]
KEYS = ["a", "b", "A", "é", "a b", "&", "", "z", "_", "~", "aa"]
BAD: list[Any] = [1, None, True, {"x": "y"}, ["a", 1], [["a"]]]


def text(rng: random.Random) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 4)))


def value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(BAD)
    if roll < 0.5:
        return text(rng)
    return [text(rng) for _ in range(rng.choice([0, 1, 2, 3, 3]))]


def case(rng: random.Random) -> dict[str, Any]:
    keys = rng.sample(KEYS, rng.randint(0, 4))
    return {"o": {k: value(rng) for k in keys}, "sets": rng.random() < 0.3}


@pytest.mark.parametrize("seed", [101, 102])
def test_encode_object_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [case(rng) for _ in range(500)]
    cases += [{"o": "a=b", "sets": False}, {"o": ["a"], "sets": False}]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:30])
    assert sum(1 for v in expected.values() if v.count("&") >= 2) > 100  # several pairs each
    assert len(expected) < len(cases) - 20  # and refused operands (undefined)


def test_a_non_string_key_traps_instead_of_deciding_differently(tmp_path: Path) -> None:
    """OPA prints a non-string key as JSON (`1`, `["a"]`) and keys that print alike overwrite
    each other; that is not reproduced: the evaluation fails (a deny)."""
    root = module_folder(tmp_path, 'results := urlquery.encode_object({input.k: "v"})\n')
    assert opa_eval(root, {"k": 1}) == "1=v"
    with pytest.raises(WasmEvaluationError, match="non-string key"):
        wasm_policy(root).evaluate(json.dumps({"k": 1}).encode())
