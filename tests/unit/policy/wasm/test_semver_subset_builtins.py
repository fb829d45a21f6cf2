"""semver.is_valid, semver.compare and object.subset match `opa eval` on generated operands."""

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.policy.wasm.differential import both, mismatches

NUMBERS = ["0", "1", "2", "10", "01", "00", "9223372036854775807", "9223372036854775808", "-1"]
IDENTIFIERS = ["alpha", "beta", "rc", "0", "1", "2", "10", "11", "01", "0a", "x-y", "-", "", "é"]
IDENTIFIERS += ["99999999999999999999", "99999999999999999998", "A", "Z9"]
METADATA = ["001", "build.5", "a..b", "", "+", "exp.sha.5114f85"]


def version(rng: random.Random) -> str:
    prefix = rng.choice(["", "", "", "v", "V", "vv", " "])
    core = ".".join(
        rng.choice(NUMBERS[:4] * 4 + NUMBERS) for _ in range(rng.choice([3] * 8 + [2, 4]))
    )
    text = prefix + core
    if rng.random() < 0.5:
        text += "-" + ".".join(rng.choice(IDENTIFIERS) for _ in range(rng.randint(1, 3)))
    if rng.random() < 0.25:
        text += "+" + rng.choice(METADATA)
    return text


SEMVER = """results := {
\t"valid": {i: semver.is_valid(v) | some i, v in input.versions},
\t"compare": {i: semver.compare(p[0], p[1]) | some i, p in input.pairs},
}
"""


@pytest.mark.parametrize("seed", [41, 42])
def test_semver_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    versions: list[Any] = [version(rng) for _ in range(400)] + [1, None, ["1.0.0"]]
    valid = [v for v in versions[:400] if rng.random() < 0.3] + ["1.0.0", "1.0.0-rc.1"]
    # Pairs among mostly-valid versions (each ordering decided), plus a few invalid operands.
    pairs = [[a, b] for a, b in itertools.product(valid[:60], repeat=2)]
    pairs += [[rng.choice(versions), rng.choice(versions)] for _ in range(200)]
    expected, actual = both(tmp_path, SEMVER, {"versions": versions, "pairs": pairs})
    assert sum(expected["valid"].values()) > 50  # both outcomes are exercised
    assert {-1, 0, 1} <= set(expected["compare"].values())
    differences = mismatches(expected["valid"], actual["valid"], versions)
    differences += mismatches(expected["compare"], actual["compare"], pairs)
    assert differences == [], "\n".join(differences[:30])


SCALARS: list[Any] = [1, 1.0, 2, 2.5, "a", "b", "1", True, False, None]


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth > 1 or kind < 0.35:
        return rng.choice(SCALARS)
    if kind < 0.7:
        return [value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = rng.sample(["x", "y", "z"], rng.randint(0, 3))
    return {k: value(rng, depth + 1) for k in keys}


def smaller(rng: random.Random, sup: Any) -> Any:
    """Something often a subset of `sup`: a slice, a sample, or a pruned copy."""
    if isinstance(sup, list) and sup and rng.random() < 0.7:
        start = rng.randrange(len(sup))
        return sup[start : start + rng.randint(0, 3)]
    if isinstance(sup, dict) and rng.random() < 0.7:
        keys = rng.sample(sorted(sup), rng.randint(0, len(sup)))
        return {k: smaller(rng, sup[k]) if rng.random() < 0.5 else sup[k] for k in keys}
    return value(rng)


SUBSET = """_set(x) := {v | some v in x} if is_array(x)

_set(x) := x if not is_array(x)

_nested(x) := {k: _set(v) | some k, v in x} if is_object(x)

_nested(x) := x if not is_object(x)

results := {
\t"plain": {i: object.subset(c.a, c.b) | some i, c in input.cases},
\t"sets": {i: object.subset(_set(c.a), _set(c.b)) | some i, c in input.cases},
\t"array_set": {i: object.subset(c.a, _set(c.b)) | some i, c in input.cases},
\t"nested_sets": {i: object.subset(_nested(c.a), _nested(c.b)) | some i, c in input.cases},
}
"""


@pytest.mark.parametrize("seed", [51, 52])
def test_object_subset_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = []
    for _ in range(400):
        a = value(rng)
        cases.append({"a": a, "b": smaller(rng, a) if rng.random() < 0.7 else value(rng)})
    cases += [{"a": [], "b": []}, {"a": [1, 1], "b": [1, 2]}, {"a": {}, "b": {}}]
    expected, actual = both(tmp_path, SUBSET, {"cases": cases})
    assert list(expected["plain"].values()).count(True) > 50
    assert list(expected["plain"].values()).count(False) > 30
    differences = [
        f"{name}: {line}"
        for name in expected
        for line in mismatches(expected[name], actual.get(name), cases)
    ]
    assert differences == [], "\n".join(differences[:30])
