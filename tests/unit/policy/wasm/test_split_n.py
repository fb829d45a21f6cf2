"""strings.split_n matches `opa eval` on generated texts, delimiters and counts, and the integer
operand (strings.split_n's and regex.find_n's n) is read from the number's text as OPA reads it
(util.Atoi64: `1.0` is 1; `1.5`, `1e1`, 2^63 are undefined)."""

import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins.operands import atoi64

from tests.unit.policy.wasm.differential import both, mismatches

PIECES = ["a", "b", ",", ",,", "é", "😀", " ", "ab", ""]
DELIMITERS = [",", ",", "a", "ab", "", "é", ",,", "x"]
COUNTS: list[Any] = [0, 1, 2, 3, 5, -1, -2, -5, 1.0, 2.5, 9223372036854775807, "1", None]


@pytest.mark.parametrize("seed", [91, 92])
def test_split_n_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [
        {
            "s": "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 8))),
            "d": rng.choice(DELIMITERS),
            "n": rng.choice(COUNTS),
        }
        for _ in range(600)
    ]
    cases += [{"s": 1, "d": ",", "n": 1}, {"s": "a", "d": None, "n": 1}]
    body = "results := {i: strings.split_n(c.s, c.d, c.n) | some i, c in input.cases}\n"
    expected, actual = both(tmp_path, body, {"cases": cases})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:30])
    assert sum(1 for v in expected.values() if len(v) > 1) > 100  # several parts compared
    assert len(expected) < len(cases) - 50  # and undefined calls (2.5, "1", null)


# Number literals in the module keep their text: 1.00, 1e1 and 2^63 reach the builtin as written.
COUNT_TEXTS = [
    "0", "1", "-1", "1.0", "1.00", "2.000", "1.5", "1e1", "1E1", "10e-1", "-0",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "10000000000000000000", "1.000000000000000000", "0.0000000000000000001",
]  # fmt: skip


def test_integer_operands_are_read_as_opa_reads_them(tmp_path: Path) -> None:
    literals = ", ".join(COUNT_TEXTS)
    body = f"""counts := [{literals}]

results := {{
\t"split_n": {{i: strings.split_n("a,b,c", ",", n) | some i, n in counts}},
\t"find_n": {{i: regex.find_n("a", "aaa", n) | some i, n in counts}},
}}
"""
    expected, actual = both(tmp_path, body, {})
    for name in ("split_n", "find_n"):
        assert mismatches(expected[name], actual[name], COUNT_TEXTS) == []
    assert len(expected["split_n"]) >= 8  # accepted ones
    assert len(expected["split_n"]) < len(COUNT_TEXTS) - 4  # and refused ones


@pytest.mark.parametrize(
    ("text", "value"),
    [("1.0", 1), ("+7", 7), ("1.5", None), ("1e1", None), ("-9223372036854775808", -(2**63))],
)
def test_atoi64(text: str, value: int | None) -> None:
    assert atoi64(text) == value
