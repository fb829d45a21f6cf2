"""units.parse_bytes matches `opa eval` on generated amounts: Go's big.Float rounding of long
mantissas and exponents, every unit spelling, and the inputs OPA refuses."""

import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.instance import WasmEvaluationError
from sekisho.policy.wasm.policy import encode_json

from tests.unit.policy.wasm.differential import both, mismatches, module_folder, wasm_policy

UNITS = ["", "k", "kb", "KB", "Ki", "kib", "KiB", "m", "mb", "mi", "MiB", "g", "gb", "gi", "t"]
UNITS += ["tb", "ti", "tib", "p", "pb", "pi", "pib", "e", "eb", "ei", "EiB", "\u212ab", "x", "b"]
UNITS += ["kbb", "k b", '"kb"', "é", "_kb", "K\u0130b", "m\u0130", "\u03a3b"]


def digits(rng: random.Random, most: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(rng.randint(0, most)))


def amount(rng: random.Random) -> str:
    text = rng.choice(["", "", "", "-", "+"]) + digits(rng, rng.choice([3, 3, 12, 25]))
    if rng.random() < 0.5:
        text += "." + digits(rng, rng.choice([2, 9, 22]))
    if rng.random() < 0.3:
        exponent = digits(rng, rng.choice([2, 2, 3])) or "0"
        text += rng.choice(["e", "E", "e+", "e-"]) + (exponent if rng.random() < 0.95 else "1" * 7)
    if rng.random() < 0.03:
        text = text.replace(".", "..", 1) + rng.choice(["", "-1", " "])
    return text + rng.choice(UNITS)


BODY = "results := {i: units.parse_bytes(v) | some i, v in input.values}\n"


@pytest.mark.parametrize("seed", [61, 62, 63])
def test_parse_bytes_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    values: list[Any] = [amount(rng) for _ in range(600)]
    values += ["1e", "1eb", "0.1ei", "1.1KiB", "123456789.123456789eb", "5.", ".5k", "", 5, None]
    expected, actual = both(tmp_path, BODY, {"values": values})
    assert len(expected) > 300  # most generated amounts are defined
    differences = mismatches(expected, actual, values)
    assert differences == [], "\n".join(differences[:30])


def test_a_result_too_long_to_write_fails_the_evaluation(tmp_path: Path) -> None:
    policy = wasm_policy(module_folder(tmp_path, BODY))
    value = policy.evaluate(encode_json({"values": ["1e4000"]}))["0"]
    assert abs(value - 10**4000) < 10**3982  # 1e4000 at big.Float's 64-bit precision
    with pytest.raises(WasmEvaluationError, match=r"units\.parse_bytes"):
        policy.evaluate(encode_json({"values": ["1e5000"]}))


SI_UNITS = ["", "", "m", "m", "M", "k", "K", "Ki", "ki", "KI", "kI", "Mi", "mi", "MI", "mI", "g"]
SI_UNITS += ["G", "Gi", "t", "T", "Ti", "p", "P", "Pi", "e", "E", "Ei", "EI", "kb", "KB", "x"]
SI_UNITS += ["M\u0130", "\u212a", "k\u212a", "é", "μ", '"k"', "m ", "mm"]


def si_amount(rng: random.Random) -> str:
    text = amount(rng)
    for unit in sorted(UNITS, key=len, reverse=True):  # drop the parse_bytes unit
        if unit and text.endswith(unit):
            text = text[: -len(unit)]
            break
    return text + rng.choice(SI_UNITS)


@pytest.mark.parametrize("seed", [71, 72, 73])
def test_parse_units_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    values: list[Any] = [si_amount(rng) for _ in range(600)]
    values += ["1m", "1M", "-1e-20m", "0.0000000000500001", "2.5", "1E3m", "7MI", "", 5, None]
    # json.marshal shows the number's text: 1000m is 1.0000000000 in OPA, not 1.
    body = "results := {i: [n, json.marshal(n)] | some i, v in input.values; n := units.parse(v)}\n"
    expected, actual = both(tmp_path, body, {"values": values})
    assert len(expected) > 300
    assert any(isinstance(v[0], float) for v in expected.values())  # non-integers are exercised
    differences = mismatches(expected, actual, values)
    assert differences == [], "\n".join(differences[:30])
