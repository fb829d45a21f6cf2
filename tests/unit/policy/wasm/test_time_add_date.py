"""time.add_date with huge deltas, and zone names Go opens as paths, against `opa eval`.

OPA calls Go's `t.AddDate(years, months, days)` with any int64 deltas. Go's time.Date adds and
normalises in wrapping int arithmetic, so a huge delta gives either a time out of the int64 ns
range (undefined) or, when the arithmetic wraps back into it, an ordinary timestamp: OPA
answers `time.add_date(0, -9223372036854775808, 0, 0)` with a value. The embedded engine
denied (trapped) on every such call until session 10 (bench/results/builtins_session10.md)."""

import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sekisho.policy.wasm.builtins.godate import wall_seconds
from sekisho.policy.wasm.builtins.timeparse import days_from_civil

from tests.unit.policy.wasm.differential import both, mismatches

BODY = "results := {i: time.add_date(c.t, c.y, c.m, c.d) | some i, c in input.cases}\n"
HUGE = [
    0, 1, -1, 12, -13, 292, 293, 106752, -106752, 2**31, -(2**31) - 1, 2**32, 2**53 + 1, 2**62,
    2**63 - 1, -(2**63), 292277022400, -292277022400, 292277026596, 768614336404564650,
]  # fmt: skip
INSTANTS = [
    [0, ""], [10**18, "America/New_York"], [-(10**18), "Asia/Kolkata"], [2**63 - 1, ""],
    [-(2**63), "Pacific/Kiritimati"], [1710054000 * 10**9, "America/New_York"],  # DST gap
    [951782400 * 10**9 + 1, "Europe/Dublin"], [1729987200 * 10**9 + 1, "Australia/Lord_Howe"],
]  # fmt: skip


def huge_cases(seed: int, count: int) -> list[dict[str, object]]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    return [
        {
            "t": rng.choice(INSTANTS),
            "y": rng.choice(HUGE) * rng.choice([1, -1]) // 1,
            "m": rng.choice(HUGE) if rng.random() < 0.5 else 0,
            "d": rng.choice(HUGE) if rng.random() < 0.5 else rng.randint(-40, 40),
        }
        for _ in range(count)
    ]


def wrapping_cases(seed: int, count: int) -> list[dict[str, object]]:
    """Day deltas near ±2^63 solved so that Go's (days * 86400) wraps to a chosen time: each
    is defined in OPA (a test of wrapping, not of refusing)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    out: list[dict[str, object]] = []
    for _ in range(count):
        seconds = rng.randint(-(10**9), 10**9)
        start = datetime.fromtimestamp(seconds, UTC)
        base = (days_from_civil(start.year, start.month, 1) - 1) * 86400 + seconds % 86400
        target = rng.randint(-(10**9), 10**9)
        target -= (target - base) % 128  # 86400 = 128 * 675: reachable targets ≡ base mod 128
        day = ((target - base) % 2**64 // 128) * pow(675, -1, 2**57) % 2**57
        day += rng.randrange(1, 128) * 2**57  # another of the 128 solutions: a huge day
        days = (day - start.day + 1 + 2**63) % 2**64 - 2**63
        out.append({"t": [seconds * 10**9, ""], "y": 0, "m": 0, "d": days})
    return out


def compare(tmp_path: Path, cases: list[dict[str, object]]) -> int:
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:30])
    return len(expected or {})


@pytest.mark.parametrize("seed", [1, 2])
def test_huge_deltas_are_undefined_or_wrap_as_in_opa(tmp_path: Path, seed: int) -> None:
    cases = huge_cases(seed, 400)
    defined = compare(tmp_path, cases)
    assert 40 < defined < 360  # both: wrapped into range and out of it


def test_deltas_that_wrap_back_into_range_give_opas_timestamp(tmp_path: Path) -> None:
    cases = wrapping_cases(3, 100)
    assert all(abs(int(str(c["d"]))) > 2**56 for c in cases)
    assert compare(tmp_path, cases) == len(cases)


def test_wall_seconds_is_the_calendar_for_ordinary_dates() -> None:
    rng = random.Random(4)  # noqa: S311 - reproducible test data
    for _ in range(2000):
        year, month = rng.randint(-(10**6), 10**6), rng.randint(-100, 100)
        day, second = rng.randint(-(10**5), 10**5), rng.randint(0, 86399)
        carry, month0 = divmod(month - 1, 12)
        calendar = (days_from_civil(year + carry, month0 + 1, 1) + day - 1) * 86400 + second
        assert wall_seconds(year, month, day, second) == calendar


ZONE_NAMES = [
    "America//New_York", "./UTC", "Europe/./Paris", "America/New_York/", "../zoneinfo/UTC",
    "/usr/share/zoneinfo/UTC", "America/../UTC", "zone.tab", "America", "Nowhere/Else",
]  # fmt: skip


def test_zone_names_are_loaded_as_go_loads_them(tmp_path: Path) -> None:
    """Go's LoadLocation refuses `..` and a leading `/`, then opens `dir + "/" + name`: a name
    Python's zoneinfo refuses as not normalized (`America//New_York`) is a zone in OPA."""
    body = "results := {i: time.format([1000000000000000000, z]) | some i, z in input.zones}\n"
    expected, actual = both(tmp_path, body, {"zones": ZONE_NAMES})
    assert mismatches(expected, actual, ZONE_NAMES) == []
    assert expected["0"] == "2001-09-08T21:46:40-04:00"
    assert set(expected) == {"0", "1", "2"}
