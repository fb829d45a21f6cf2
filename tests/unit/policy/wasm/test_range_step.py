"""numbers.range_step matches `opa eval` on generated operands written as Rego number literals
(so texts such as `1.0`, `1e1`, `10e-1` and integers beyond int64 reach both as written):
both directions, steps larger than the span, and operands OPA refuses (undefined)."""

import json
import random
from pathlib import Path

import pytest
from sekisho.policy.wasm.builtins import numbers
from sekisho.policy.wasm.builtins.regotext import Number
from sekisho.policy.wasm.instance import WasmEvaluationError

from tests.unit.policy.wasm.differential import (
    both,
    mismatches,
    module_folder,
    opa_eval,
    wasm_policy,
)

ENDS = ["0", "1", "-1", "3", "-4", "7", "10", "25", "1.0", "-2.0", "1e1", "2E1", "10e-1", "1.5"]
ENDS += ['"1"', "null"]
# Beyond int64 and written with exponents: only as ranges of a few numbers.
BIG = [
    ("9223372036854775807", "9223372036854775809"),
    ("-9223372036854775809", "-9223372036854775807"),
    ("1e22", "10000000000000000000003"),
    ("1.0e22", "1e22"),
    ("100000000000000000000000", "99999999999999999999998"),
]
STEPS = ["1", "1", "2", "3", "7", "50", "0", "-1", "1.0", "2e0", "0.5", "1e0", '"2"']


def literal_cases(rng: random.Random, count: int) -> list[str]:
    cases = []
    for _ in range(count):
        if rng.random() < 0.15:
            first, last = rng.choice(BIG)
        else:
            first, last = rng.choice(ENDS), rng.choice(ENDS)
        cases.append(f"[{first}, {last}, {rng.choice(STEPS)}]")
    return cases


@pytest.mark.parametrize("seed", [111, 112])
def test_range_step_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = literal_cases(rng, 400)
    body = f"""cases := [{", ".join(cases)}]

results := {{i: numbers.range_step(c[0], c[1], c[2]) | some i, c in cases}}
"""
    expected, actual = both(tmp_path, body, {})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:30])
    assert sum(1 for v in expected.values() if len(v) > 2) > 60  # real ranges compared
    assert len(expected) < len(cases) - 60  # and refused operands (undefined)


def test_a_range_past_the_bound_traps(tmp_path: Path) -> None:
    """OPA builds any range until the query is cancelled; past 100,000 numbers the evaluation
    fails here (a deny) rather than build it."""
    root = module_folder(tmp_path, "results := count(numbers.range_step(0, input.n, 1))\n")
    assert opa_eval(root, {"n": 100_000}) == 100_001
    with pytest.raises(WasmEvaluationError, match="more than 100000"):
        wasm_policy(root).evaluate(b'{"n": 100000}')
    assert wasm_policy(root).evaluate(b'{"n": 99999}') == 100_000


def test_a_long_operand_text_traps_before_it_is_read(tmp_path: Path) -> None:
    """Reading an operand's text as an exact rational is quadratic in its length (300,000
    digits from to_number of a request string: 6 s of CPU before the call failed anyway), so a
    text longer than MAX_TEXT traps before it is read (opa eval leaves 4,301 digits undefined)."""
    body = "results := count(numbers.range_step(to_number(input.s), to_number(input.s), 1))\n"
    root = module_folder(tmp_path, body)
    longest = "9" * 4_300  # the most digits Python reads as an int
    assert wasm_policy(root).evaluate(json.dumps({"s": longest}).encode()) == 1
    with pytest.raises(WasmEvaluationError, match="longer than"):
        wasm_policy(root).evaluate(json.dumps({"s": longest + "9"}).encode())
    with pytest.raises(numbers.RangeTooLargeError):
        numbers.big_int_operand(Number("1." + "0" * 4_300), "numbers.range_step")
