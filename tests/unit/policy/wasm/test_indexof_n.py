"""indexof_n matches `opa eval` on generated strings: code-point indexes, overlapping matches,
multi-byte characters, and the operands OPA refuses."""

import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins import strings

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


class _CountingText(str):
    """A string that counts the characters read from it by index (as the scan reads them)."""

    reads = 0

    def __getitem__(self, index: Any) -> Any:
        _CountingText.reads += 1
        return super().__getitem__(index)

    def __iter__(self) -> Any:
        for char in super().__iter__():
            _CountingText.reads += 1
            yield char

    def startswith(self, prefix: Any, *args: Any) -> bool:  # a per-index scan reads it all
        _CountingText.reads += len(prefix)
        return super().startswith(prefix, *args)


def test_indexof_n_is_linear_in_both_strings() -> None:
    """Policy may pass two caller-chosen strings: testing each index with startswith read
    len(base) * len(search) characters (`a` * 1.6M against `a` * 800k: 21 s of CPU). The scan
    reads each character a bounded number of times, and finds what the per-index test finds."""
    n = 20_000
    base, search = _CountingText("a" * n), _CountingText("a" * (n // 2))
    _CountingText.reads = 0
    found = strings._indexof_n(base, search)
    assert found == list(range(n - n // 2 + 1))
    assert _CountingText.reads <= 4 * (len(base) + len(search))
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    for _ in range(2_000):
        a, b = text(rng, 30), text(rng, 3) or "a"
        assert strings._indexof_n(a, b) == [i for i in range(len(a)) if a.startswith(b, i)]
