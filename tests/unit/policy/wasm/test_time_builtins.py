"""time.* in the embedded engine match `opa eval` on generated timestamps, durations and zones."""

import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.config import PolicyConfig
from sekisho.policy_components import folder_engine

from tests.fakes.clock import FakeClock
from tests.opa import opa_binary
from tests.unit.policy.inputs import policy_input
from tests.unit.policy.wasm.differential import both, mismatches

BODY = """results := {
	"rfc3339": {i: time.parse_rfc3339_ns(s) | some i, s in input.timestamps},
	"duration": {i: time.parse_duration_ns(s) | some i, s in input.durations},
	"date": {i: time.date(t) | some i, t in input.moments},
	"clock": {i: time.clock(t) | some i, t in input.moments},
	"weekday": {i: time.weekday(t) | some i, t in input.moments},
	"add_date": {i: time.add_date(c.t, c.y, c.m, c.d) | some i, c in input.additions},
	"diff": {i: time.diff(c.a, c.b) | some i, c in input.pairs},
}
"""
ZONES = ["", "UTC", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe", "Nowhere/Else"]
MIN_NS, MAX_NS = -(2**63), 2**63 - 1


def timestamp(rng: random.Random) -> str:
    year = rng.choice([rng.randint(1678, 2261), 1970, 2000, 2024, 2100, 1677, 2262, 0, 9999])
    month, day = rng.randint(1, 12), rng.choice([1, 15, 28, 29, 30, 31])
    hour = rng.choice([f"{rng.randint(0, 23):02d}", str(rng.randint(0, 9)), "24"])
    second = rng.choice([f"{rng.randint(0, 59):02d}", "60"])
    fraction = rng.choice(
        ["", "", f".{rng.randint(0, 10**6)}", f",{rng.randint(0, 99)}", ".1234567891234"]
    )
    zone = rng.choice(["Z", "Z", "+01:00", "-05:30", "+24:00", "-00:60", "+1:00", "z", "+0100"])
    text = (
        f"{year:04d}-{month:02d}-{day:02d}T{hour}:{rng.randint(0, 59):02d}:{second}{fraction}{zone}"
    )
    mutation = rng.random()
    if mutation < 0.05:
        return text.replace("T", "t")
    if mutation < 0.1:
        return text + " "
    if mutation < 0.15:
        return text[: rng.randrange(len(text))]
    return text


def duration(rng: random.Random) -> str:
    units = ["ns", "us", "µs", "μs", "ms", "s", "m", "h", "d", "w", "y", "x", ""]
    parts = []
    for _ in range(rng.randint(1, 3)):
        number = rng.choice(
            [str(rng.randint(0, 500)), f"{rng.randint(0, 99)}.{rng.randint(0, 999)}", ".5", "1."]
        )
        parts.append(number + rng.choice(units))
    return rng.choice(["", "", "-", "+"]) + "".join(parts)


def moment(rng: random.Random) -> Any:
    ns = rng.choice(
        [rng.randint(-(10**18), 10**19 - 1), 0, -1, MIN_NS, MAX_NS, 1.5e18, 10**9 + 0.5]
    )
    ns = ns if isinstance(ns, float) or MIN_NS <= ns <= MAX_NS else ns // 10
    shape = rng.random()
    if shape < 0.5:
        return ns
    return [ns, rng.choice(ZONES)] if shape < 0.9 else [ns, rng.choice(ZONES), "RFC3339"]


def cases(seed: int, count: int) -> dict[str, Any]:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    return {
        "timestamps": [timestamp(rng) for _ in range(count)],
        "durations": [duration(rng) for _ in range(count)],
        "moments": [moment(rng) for _ in range(count)],
        "additions": [
            {
                "t": moment(rng),
                "y": rng.randint(-300, 300),
                "m": rng.randint(-30, 30),
                "d": rng.choice([rng.randint(-400, 400), 1.0]),
            }
            for _ in range(count)
        ],
        "pairs": [{"a": moment(rng), "b": moment(rng)} for _ in range(count)],
    }


@pytest.mark.parametrize("seed", [11, 12])
def test_time_builtins_match_opa(tmp_path: Path, seed: int) -> None:
    document = cases(seed, 300)
    expected, actual = both(tmp_path, BODY, document)
    inputs = {
        "rfc3339": "timestamps",
        "duration": "durations",
        "date": "moments",
        "clock": "moments",
        "weekday": "moments",
        "add_date": "additions",
        "diff": "pairs",
    }
    differences = [
        f"{name}: {line}"
        for name, key in inputs.items()
        for line in mismatches(expected[name], actual[name], document[key])
    ]
    assert differences == [], "\n".join(differences[:40])
    defined = sum(len(v) for v in expected.values())
    assert defined > 0.5 * 7 * 300  # most generated inputs are valid: the comparison is not empty


def test_now_ns_is_one_value_per_evaluation(tmp_path: Path) -> None:
    body = 'results := {"same": time.now_ns() == time.now_ns(), "now": time.now_ns()}\n'
    expected, actual = both(tmp_path, body, {})
    assert actual["same"] is True and expected["same"] is True
    assert abs(actual["now"] - expected["now"]) < 60 * 10**9


CLOCKED = """package clocked

import rego.v1

default decision := {"allow": false}

decision := {"allow": true, "scopes": [], "claims": {"now_ns": time.now_ns(), "now": input.now}} if {
	input.request.audience == "https://clocked.example"
}
"""


async def test_now_ns_reads_the_service_clock_that_input_now_reads(tmp_path: Path) -> None:
    """time.now_ns() in the embedded engine is the injected clock's instant (issue #20 of style
    review 11): with a fake clock it equals input.now, which the exchange takes from the same
    clock, and follows the clock from one decision to the next (the wall clock would not)."""
    root = tmp_path / "policies"
    root.mkdir()
    (root / "clocked.rego").write_text(CLOCKED)
    clock = FakeClock(1_900_000_000.0)
    config = PolicyConfig(path=root, query="data.clocked.decision", opa_binary=str(opa_binary()))
    engine = folder_engine(config, tmp_path, clock)  # as the service builds it
    await engine.start()
    try:
        seen = []
        for _ in range(2):
            document = policy_input("https://clocked.example", now=int(clock.now()))
            claims = (await engine.decide(document)).claims
            seen.append((claims["now_ns"], claims["now"] * 10**9))
            clock.advance(5.0)
    finally:
        await engine.close()
    assert seen == [(1_900_000_000 * 10**9,) * 2, (1_900_000_005 * 10**9,) * 2]
