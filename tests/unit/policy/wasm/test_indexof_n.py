"""indexof_n matches `opa eval` on generated strings: code-point indexes, overlapping matches,
multi-byte characters, and the operands OPA refuses."""

import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.policy.wasm.differential import both, mismatches

PIECES = ["a", "b", "aa", "ab", "é", "日本", "😀", " ", "\n", "\\", '"', "\u0301", "A"]


def text(rng: random.Random, most: int) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, most)))


@pytest.mark.parametrize("seed", [81, 82])
def test_indexof_n_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases: list[dict[str, Any]] = [{"a": text(rng, 12), "b": text(rng, 2)} for _ in range(500)]
    cases += [
        {"a": "aaaa", "b": "aa"},
        {"a": "x", "b": ""},
        {"a": 1, "b": "a"},
        {"a": "a", "b": []},
    ]
    body = "results := {i: indexof_n(c.a, c.b) | some i, c in input.cases}\n"
    expected, actual = both(tmp_path, body, {"cases": cases})
    assert sum(1 for v in expected.values() if len(v) > 1) > 15  # several matches per string
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:30])
