"""urlquery.decode_object matches `opa eval` (Go's url.ParseQuery) on generated query strings:
repeated and empty keys, pairs without '=', '+' and %XX escapes (bad ones and ones that are not
UTF-8 in values), ';' separators, and the 10,000-pair limit."""

import json
import random
from pathlib import Path

import pytest
from sekisho.policy.wasm.instance import WasmEvaluationError

from tests.unit.policy.wasm.differential import (
    both,
    mismatches,
    module_folder,
    opa_eval,
    wasm_policy,
)

BODY = "results := {i: urlquery.decode_object(q) | some i, q in input.cases}\n"
KEYS = ["a", "b", "a", "%61", "a+b", "a%20b", "", "é", "%C3%A9", "k=", "x"]
VALUES = ["", "1", "2", "a+b", "%2B", "%zz", "%", "%4", "%FF", "%C3", "é", "=", "%3D", "~"]
VALUES += ["%e2%82%ac"]


def query(rng: random.Random) -> str:
    pairs = []
    for _ in range(rng.randint(0, 5)):
        roll = rng.random()
        if roll < 0.1:
            pairs.append(rng.choice(KEYS))  # no '='
        elif roll < 0.13:
            pairs.append(rng.choice(["", "a;b=1", "a=1;b", ";"]))
        else:
            pairs.append(f"{rng.choice(KEYS)}={rng.choice(VALUES)}")
    return "&".join(pairs)


@pytest.mark.parametrize("seed", [121, 122])
def test_decode_object_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [query(rng) for _ in range(600)] + ["", "&", "=", "&&a", 1]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:30])
    assert sum(1 for v in expected.values() if len(v) >= 2) > 100  # several keys compared
    assert len(expected) < len(cases) - 100  # and refused queries (undefined)


@pytest.mark.parametrize("pairs", [10_000, 10_001])
def test_the_pair_limit_is_gos(tmp_path: Path, pairs: int) -> None:
    cases = ["&".join(["a=1"] * pairs)]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    assert expected == actual
    assert (expected == {}) == (pairs > 10_000)


def test_a_key_that_is_not_utf8_traps_instead_of_deciding_differently(tmp_path: Path) -> None:
    root = module_folder(tmp_path, "results := urlquery.decode_object(input.q)\n")
    assert opa_eval(root, {"q": "%FF=1&%FE=2"}) is not None  # OPA keeps both byte keys
    with pytest.raises(WasmEvaluationError, match="not UTF-8"):
        wasm_policy(root).evaluate(json.dumps({"q": "%FF=1&%FE=2"}).encode())
