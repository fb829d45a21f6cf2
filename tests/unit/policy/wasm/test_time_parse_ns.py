"""time.parse_ns in the embedded engine matches `opa eval` (Go's time.Parse) on generated
layouts and values: times formatted with the layout (time.format is checked against OPA in
test_time_format.py), then mutated, plus named layouts and zone abbreviations."""

import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins import gotimezone, timelayout
from sekisho.policy.wasm.builtins.timeformat import NAMED_LAYOUTS, Moment, format_time

from tests.unit.policy.wasm.differential import both, mismatches
from tests.unit.policy.wasm.test_time_format import ELEMENTS, TRICKY

BODY = "results := {i: time.parse_ns(c.layout, c.value) | some i, c in input.cases}\n"
ZONE_TEXTS = [
    "UTC", "GMT", "GMT+3", "GMT-12", "GMT+13", "EST", "CEST", "ChST", "MeST", "WITA", "ABCDT",
    "ABCDE", "AB", "+05", "-1", "+13", "Z", "+01:00", "-0530", "+24:00", "+25:00", "-07:60:61",
]  # fmt: skip


def formatted(rng: random.Random, layout: str) -> str:
    seconds = rng.randint(-(2**33), 2**33)
    nanos = rng.choice([0, rng.randint(0, 10**9 - 1), 500_000_000])
    wall = datetime.fromtimestamp(seconds, UTC)
    return format_time(Moment(wall, nanos, 0, "UTC"), layout)


def _digit(rng: random.Random, value: str, _at: int) -> str:
    spots = [i for i, c in enumerate(value) if c.isdigit()] or [len(value)]
    i = rng.choice(spots)
    return value[:i] + rng.choice("0123456789") + value[i + 1 :]


MUTATIONS = [
    lambda rng, v, at: v[:at] + v[at + 1 :],  # delete
    lambda rng, v, at: v[:at] + rng.choice("0123456789 .,:-+Tz") + v[at:],  # insert
    _digit,
    lambda rng, v, at: v.upper() if rng.random() < 0.5 else v.lower(),
    lambda rng, v, at: v.replace(" ", "   ") if " " in v else " " + v,  # spaces
    lambda rng, v, at: v + rng.choice([".5", ",123456789123", ".-1"]),  # fractions
    lambda rng, v, at: v[:at] + rng.choice(ZONE_TEXTS) + v[at:],
    lambda rng, v, at: v[:at] + rng.choice("+-") + v[at:],
]


def mutate(rng: random.Random, value: str) -> str:
    return str(rng.choice(MUTATIONS)(rng, value, rng.randint(0, len(value))))


def layout(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return rng.choice(list(NAMED_LAYOUTS))
    pieces = ELEMENTS * 3 + TRICKY + ["-", ":", " ", "T"] * 3
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 7)))


def case(rng: random.Random) -> dict[str, Any]:
    chosen = layout(rng)
    value = formatted(rng, NAMED_LAYOUTS.get(chosen, chosen))
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        value = mutate(rng, value)
    return {"layout": chosen, "value": value}


@pytest.mark.parametrize("seed", [41, 42, 43, 44])
def test_time_parse_ns_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [case(rng) for _ in range(1000)]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:40])
    assert 150 < len(expected or {}) < 1000  # both parsed and refused values are compared


EDGE_CASES = [
    ("2006-01-02 MST", "2024-03-01 GMT+3"),  # Go names a zone GMT+3 but keeps the UTC instant
    ("2006-01-02 MST", "2024-03-01 EST"),  # an unknown abbreviation: offset 0, as Go
    ("2006-01-02 MST", "2024-03-01 +05"),  # a signed number as a zone name: offset 0
    ("2006-01-02 MST", "2024-03-01 UTC+1"),  # UTC, then extra text
    ("2006-01-02T15:04:05Z07:00 -07:00", "2024-03-01T10:00:00Z +01:00"),  # Z wins
    ("2006 MST -07:00 MST", "2024 UTC +01:00 EST"),  # UTC still wins after another name
    ("2006-01-02 15:04:05", "2024-03-01 10:00:00.123456789123"),  # fraction not in the layout
    ("2006-01-02 15:04:05.000", "2024-03-01 10:00:00.+12"),  # Go's atoi takes the sign
    ("2006 002", "2024 060"),  # year day of a leap year: 29 Feb
    ("2006 __2 Jan 2", "2023   1 Jan 1"),
    ("2006 002 Feb", "2023 060 Feb"),  # year day and month disagree
    ("06 Jan 2 3PM", "69 jAN 31 12AM"),
    ("06 Jan 2 3PM", "-5 Jan 31 12AM"),  # atoi("-5"): 1995
    ("Jan _2 15:04", "Feb 30 10:00"),  # day out of range
    ("", ""),  # year 0: outside the int64 range
    ("RFC3339", "2024-03-01T10:00:00+24:00"),
    ("RFC1123Z", "Fri, 01 Mar 2024 10:00:00 +0100"),
    ("Mon Jan 2", "Friday Mar 1"),  # Mon reads "Fri", then "day" is extra text
    # Go 1.26's parseSignedOffset takes -23..+23 (12 before): session 10 found +14 undefined
    ("2006-01-02 MST", "2024-03-01 +13"),
    ("2006-01-02 MST", "2024-03-01 +14"),
    ("2006-01-02 MST", "2024-03-01 -23"),
    ("2006-01-02 MST", "2024-03-01 +24"),
    ("2006-01-02 MST", "2024-03-01 GMT+14"),
    ("2006-01-02 MST", "2024-03-01 GMT-23"),
    ("2006-01-02 MST", "2024-03-01 GMT+24"),
    ("RFC1123", "Thu, 15 Mar 2255 06:00:00 +14"),
]


def test_parse_edge_cases_match_opa(tmp_path: Path) -> None:
    cases = [{"layout": layout, "value": value} for layout, value in EDGE_CASES]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    assert mismatches(expected, actual, cases) == []
    assert len(expected or {}) >= 8
    assert all(str(i) in (expected or {}) for i, (_, v) in enumerate(EDGE_CASES) if "+14" in v)


def test_an_abbreviation_on_a_host_not_in_utc_fails_instead_of_guessing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Go reads `EST` against the process's local zone; only a UTC one is reproduced."""
    assert timelayout.parse_layout("2006 MST", "2024 EST") == 1704067200 * 10**9
    monkeypatch.setattr(time, "timezone", 5 * 3600)
    monkeypatch.setattr(time, "altzone", 4 * 3600)
    with pytest.raises(gotimezone.TimeLayoutUnsupportedError):
        timelayout.parse_layout("2006 MST", "2024 EST")
    assert timelayout.parse_layout("2006 MST", "2024 UTC") == 1704067200 * 10**9
