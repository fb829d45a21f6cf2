"""time.* operands read as OPA reads them: ns through big.Float (tzTime: `1e1` is 10, `1.5`,
2^63 and -2^63-1 are refused, `1e-700000000` underflows to 0), time.add_date's years, months
and days through IntOperand (`1e1` refused). Compared with `opa eval` on number literals, which
keep their text."""

import json
import random
from pathlib import Path

import pytest
from sekisho.policy.wasm.builtins.gobigfloat import exact_int64
from sekisho.policy.wasm.instance import WasmEvaluationError

from tests.unit.policy.wasm.differential import both, mismatches, module_folder, wasm_policy

EDGE_TEXTS = [
    "0", "-0", "1", "1.0", "1.00", "1.5", "1e1", "1E1", "10e-1", "0.5e1", "1e18", "1e19",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "9223372036854775807.0", "1234567890123456789.4",
    "1234567890123456789.5", "12345678901234567890e-1", "1.0000000000000000000001",
    "0.0000000000000000001", "1e400", "1e-400", "-1e400", "1e-700000000", "-1e-700000000",
    "0e999999999", "9.223372036854775807e18", "9.223372036854775808e18",
    "-9.223372036854775808e18", "922337203685477580.75e1", "4611686018427387904.5",
]  # fmt: skip


def generated_texts(seed: int, count: int) -> list[str]:
    """Number texts near the edges: 17-21 digit mantissas, fractions, exponents."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    texts = []
    for _ in range(count):
        digits = str(rng.choice([rng.randrange(10**18), rng.randrange(2**62, 2**64)]))
        fraction = rng.choice(["", "", ".0", ".5", ".25", "." + str(rng.randrange(10**6))])
        exponent = rng.choice(["", "", "e0", f"e-{rng.randrange(1, 4)}", f"e{rng.randrange(4)}"])
        texts.append(rng.choice(["", "-"]) + digits + fraction + exponent)
    return texts


def compare(tmp_path: Path, texts: list[str]) -> tuple[int, int]:
    """(compared calls, accepted calls); asserts no difference."""
    literals = ",\n\t".join(texts)
    # Every text as a count too: beyond what a date can move by, OPA's AddDate wraps (godate.py).
    counts = ", ".join(texts)
    body = f"""values := [
\t{literals},
]

counts := [{counts}]

results := {{
\t"date": {{i: time.date(n) | some i, n in values}},
\t"clock": {{i: time.clock([n, "Asia/Kolkata"]) | some i, n in values}},
\t"weekday": {{i: time.weekday(n) | some i, n in values}},
\t"format": {{i: time.format([n, "UTC", "RFC3339Nano"]) | some i, n in values}},
\t"diff": {{i: time.diff(n, 0) | some i, n in values}},
\t"add_date_ns": {{i: time.add_date(n, 0, 0, 1) | some i, n in values}},
\t"add_date_months": {{i: time.add_date(0, 0, n, 0) | some i, n in counts}},
\t"add_date_days": {{i: time.add_date(0, 0, 0, n) | some i, n in counts}},
}}
"""
    expected, actual = both(tmp_path, body, {})
    differences = [
        f"{name} {line}"
        for name in expected
        for line in mismatches(expected[name], actual.get(name), texts)
    ]
    assert differences == [], "\n".join(differences[:30])
    return len(expected) * len(texts), sum(len(v) for v in expected.values())


def test_edge_operands_are_read_as_opa_reads_them(tmp_path: Path) -> None:
    compared, accepted = compare(tmp_path, EDGE_TEXTS)
    assert accepted > compared // 3  # accepted ones
    assert accepted < compared - 50  # and refused ones


@pytest.mark.parametrize("seed", [1, 2])
def test_generated_operands_are_read_as_opa_reads_them(tmp_path: Path, seed: int) -> None:
    compared, accepted = compare(tmp_path, generated_texts(seed, 300))
    assert compared - 100 > accepted > compared // 10  # both accepted and refused ones


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e1", 10),
        ("1.5", None),
        ("9223372036854775808", None),
        ("-9223372036854775808", -(2**63)),
        ("-9223372036854775809", None),
        ("1234567890123456789.4", None),  # 64 bits keep .375; a float64 would say integer
        ("1e-700000000", 0),  # Go's int32 exponent underflows to an exact 0
    ],
)
def test_exact_int64(text: str, value: int | None) -> None:
    assert exact_int64(text) == value


def test_a_long_time_operand_traps_before_it_is_read(tmp_path: Path) -> None:
    """Reading the mantissa is quadratic in its length (300,000 digits: 3 s of CPU), and
    to_number of a request string lets the caller choose it: a text longer than 4,300
    characters traps (deny) instead of being read, where Go would round `1.000…` to 1 ns."""
    root = module_folder(tmp_path, "results := time.date(to_number(input.s))\n")
    longest = "1." + "0" * 4_298  # 4,300 characters
    assert wasm_policy(root).evaluate(json.dumps({"s": longest}).encode()) == [1970, 1, 1]
    with pytest.raises(WasmEvaluationError, match="longer than"):
        wasm_policy(root).evaluate(json.dumps({"s": longest + "0"}).encode())
