"""A standard Rego policy, using constructs regopy refused or decided differently, decides
exactly as `opa eval` on seeded random inputs: key/value comprehensions, `every`, nested
object.union, numeric sort/min/max, net.cidr_contains, time parsing, glob/regex and sprintf."""

import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.policy.wasm.differential import both, mismatches

BODY = """results := {
	"labels": {i: {k | some k, v in c.labels; startswith(v, "a")} | some i, c in input.cases},
	"doubled": {i: doubled(c) | some i, c in input.cases},
	"every": {i: true | some i, c in input.cases; every x in c.numbers { x >= 0 }},
	"union": {i: object.union(c.base, c.overlay) | some i, c in input.cases},
	"sorted": {i: sort(c.numbers) | some i, c in input.cases},
	"extremes": {i: [min(c.numbers), max(c.numbers)] | some i, c in input.cases; count(c.numbers) > 0},
	"set_extremes": {i: [min(number_set(c)), max(number_set(c))] | some i, c in input.cases; count(c.numbers) > 0},
	"cidr": {i: net.cidr_contains(c.cidr, c.ip) | some i, c in input.cases},
	"time": {i: time.parse_rfc3339_ns(c.ts) | some i, c in input.cases},
	"glob": {i: glob.match(c.pattern, ["."], c.host) | some i, c in input.cases},
	"regex": {i: regex.match(c.re, c.host) | some i, c in input.cases},
	"sprintf": {i: sprintf("%s has %d numbers, base %v", [c.user, count(c.numbers), c.base]) |
		some i, c in input.cases},
	"decision": {i: decision(c) | some i, c in input.cases},
}

default decision(_) := {"allow": false, "reason": "default"}

decision(c) := {"allow": true, "scopes": sort(granted(c)), "reason": sprintf("%d scopes", [count(granted(c))])} if {
	every x in c.numbers { x >= 0 }
	net.cidr_contains(c.cidr, c.ip)
	time.parse_rfc3339_ns(c.ts) < time.parse_rfc3339_ns("2030-01-01T00:00:00Z")
	glob.match(c.pattern, ["."], c.host)
}

doubled(c) := {k: d | some k, v in c.scores; d := v * 2}

number_set(c) := {n | some n in c.numbers}

granted(c) := {sprintf("%s.%s", [k, v]) | some k, v in c.labels; not startswith(v, "z")}
"""

WORDS = ["alpha", "beta", "zeta", "apex", "omega", "", "a", "Ä"]


def number(rng: random.Random) -> Any:
    return rng.choice(
        [rng.randint(-5, 500), rng.randint(0, 10**6), round(rng.uniform(-10, 10), 3), 0, 60, 300]
    )


def nested(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rng.sample(["a", "b", "c", "d"], rng.randint(0, 3)):
        out[key] = nested(rng, depth + 1) if depth < 2 and rng.random() < 0.4 else number(rng)
    return out


def case(rng: random.Random) -> dict[str, Any]:
    octets = [rng.randint(0, 255) for _ in range(4)]
    return {
        "user": rng.choice(WORDS),
        "labels": {
            rng.choice(["team", "env", "tier", "x"]) + str(n): rng.choice(WORDS)
            for n in range(rng.randint(0, 4))
        },
        "scores": {w or "empty": number(rng) for w in rng.sample(WORDS, 3)},
        "numbers": [number(rng) for _ in range(rng.randint(0, 6))],
        "base": nested(rng),
        "overlay": nested(rng),
        "cidr": rng.choice(
            ["10.0.0.0/8", "192.168.1.0/24", "0.0.0.0/0", "2001:db8::/32", "10.0.0.0/33", "bad"]
        ),
        "ip": rng.choice(
            [
                ".".join(map(str, octets)),
                "10.1.2.3",
                "192.168.1.77",
                "2001:db8::1",
                "::1",
                "300.1.1.1",
            ]
        ),
        "ts": rng.choice(
            [
                "2026-01-01T00:00:00Z",
                "2031-06-01T12:00:00+02:00",
                "2029-12-31T23:59:59.999Z",
                "not a time",
                f"20{rng.randint(10, 40)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:00:00Z",
            ]
        ),
        "pattern": rng.choice(
            ["*.example.com", "api.*.com", "**.corp", "?.io", "[ab].net", "{a,b}.org"]
        ),
        "host": rng.choice(
            [
                "api.example.com",
                "a.b.example.com",
                "x.corp",
                "deep.x.corp",
                "a.io",
                "b.net",
                "b.org",
            ]
        ),
        "re": rng.choice(
            ["^api\\\\.", "example\\\\.com$", "[0-9]+", "(a|b)+\\\\.", "(unclosed", "^$"]
        ),
    }


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_standard_policy_decides_as_opa_eval(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [case(rng) for _ in range(150)]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    differences = [
        f"{feature}: {line}"
        for feature in expected
        for line in mismatches(expected[feature], actual.get(feature), cases)
    ]
    assert differences == [], "\n".join(differences[:30])
    assert set(actual) == set(expected)
    granted = [d for d in expected["decision"].values() if d["allow"]]
    assert granted and len(granted) < len(cases)  # both outcomes occur
