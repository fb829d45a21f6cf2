"""time.format in the embedded engine matches `opa eval` (Go's Time.Format) on generated
layouts, timestamps and zones."""

import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins.timeformat import NAMED_LAYOUTS

from tests.unit.policy.wasm.differential import both, mismatches

BODY = "results := {i: time.format(t) | some i, t in input.moments}\n"
ELEMENTS = [
    "2006", "06", "January", "Jan", "1", "01", "Monday", "Mon", "2", "_2", "02", "__2", "002",
    "15", "3", "03", "4", "04", "5", "05", "PM", "pm", "MST", "Z070000", "Z07:00:00", "Z0700",
    "Z07:00", "Z07", "-070000", "-07:00:00", "-0700", "-07:00", "-07", ".0", ".000", ",000",
    ".999", ",999999999", ".9999999999", ".0000000000", ".000000000",
]  # fmt: skip
# Near misses: Go reads these as literals or as other elements.
TRICKY = [
    "Janx", "Jan2", "Monx", "MonX", "Mo", "MS", "_2006", "__", "_", "0", "00", "07", "08", "1 5",
    "Pm", "pM", "P", "-", "-08", "Z", "Z08", ".", ".00x", ".001", ".999a", ".9 ", ",", "x", " ",
    "T", "é", "2006-01-02", "Jan_2", "January2006", "Jun", "J",
]  # fmt: skip
ZONES = ["", "UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Europe/Dublin",
         "Asia/Kathmandu", "America/St_Johns", "Africa/Monrovia", "Pacific/Chatham"]  # fmt: skip
MIN_NS, MAX_NS = -(2**63), 2**63 - 1


def layout(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return rng.choice([*NAMED_LAYOUTS, "", "rfc3339"])
    pieces = ELEMENTS * 2 + TRICKY
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))


def moment(rng: random.Random) -> Any:
    ns = rng.choice(
        [
            rng.randint(MIN_NS, MAX_NS),
            rng.randint(-(10**17), 3 * 10**18),
            rng.randint(0, 2 * 10**18) // 10**9 * 10**9,  # whole seconds: no fraction
            rng.randint(0, 2 * 10**18) // 10**6 * 10**6,  # trailing zeros in the fraction
            0, MIN_NS, MAX_NS,
        ]
    )  # fmt: skip
    shape = rng.random()
    if shape < 0.1:
        return ns
    if shape < 0.2:
        return [ns, rng.choice(ZONES)]
    return [ns, rng.choice(ZONES), layout(rng)]


@pytest.mark.parametrize("seed", [31, 32, 33])
def test_time_format_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    document = {"moments": [moment(rng) for _ in range(1000)]}
    expected, actual = both(tmp_path, BODY, document)
    differences = mismatches(expected, actual, document["moments"])
    assert differences == [], "\n".join(differences[:40])
    assert len(expected) == 1000  # every generated moment is valid: all are compared


def test_format_edge_cases_match_opa(tmp_path: Path) -> None:
    moments = [
        [0, "", "Mon Jan _2 __2 002 3:4:5 PM pm MST -07 Z07 .000 ,999"],
        [1, "", ".999999999 .99 .000000000 .0000000000"],
        [10**9 * 86400 * 40 + 123_000_000, "Pacific/Chatham", "Z07:00:00 -070000 MST"],
        [-1, "Africa/Monrovia", "2006-01-02T15:04:05.999999999Z07:00:00 MST"],  # LMT -0:44:30
        [MIN_NS, "America/New_York", "RFC1123Z"],
        [MAX_NS, "Australia/Lord_Howe", "RFC850"],
        [1.5e18, "Asia/Kolkata", ""],
        [1.5, "", "2006"],  # not an integer: undefined
        [0, "Nowhere/Else", "2006"],  # unknown zone: undefined
        [0, "", 7],  # a layout that is not a string: undefined
    ]
    expected, actual = both(tmp_path, BODY, {"moments": moments})
    assert mismatches(expected, actual, moments) == []
    assert len(expected) == len(moments) - 3
