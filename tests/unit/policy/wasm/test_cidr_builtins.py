"""net.cidr_is_valid matches `opa eval` on generated CIDR-like strings: IPv4 and IPv6 forms,
leading zeros, zones, prefix spellings, embedded IPv4, and non-strings."""

import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.policy.wasm.differential import both, mismatches

OCTETS = ["0", "1", "10", "127", "255", "256", "01", "00", "999", "", "1a"]
GROUPS = ["0", "1", "ff", "FFFF", "0db8", "2001", "00000", "12345", "g", "", "fe80"]
PREFIXES = ["0", "8", "24", "32", "33", "64", "128", "129", "024", "+8", "-1", "", "8 ", "1e1"]
PREFIXES += ["255.255.255.0", "0x10", "٣"]


def ipv4(rng: random.Random) -> str:
    return ".".join(
        rng.choice(OCTETS[:5] * 3 + OCTETS) for _ in range(rng.choice([4] * 6 + [3, 5]))
    )


def ipv6(rng: random.Random) -> str:
    groups = [rng.choice(GROUPS[:7] * 3 + GROUPS) for _ in range(rng.choice([8, 8, 3, 5, 9]))]
    if len(groups) < 8 or rng.random() < 0.2:
        cut = rng.randrange(len(groups) + 1)
        groups = [*groups[:cut], "", *groups[cut:]] if rng.random() < 0.9 else groups
    text = ":".join(groups)
    if rng.random() < 0.2:
        text = "::ffff:" + ipv4(rng) if rng.random() < 0.5 else text + ":" + ipv4(rng)
    if rng.random() < 0.05:
        text += rng.choice(["%eth0", "%1", "%"])
    return text


def cidr(rng: random.Random) -> str:
    address = ipv4(rng) if rng.random() < 0.5 else ipv6(rng)
    if rng.random() < 0.05:
        return address
    return address + "/" + rng.choice(PREFIXES[:7] * 3 + PREFIXES)


@pytest.mark.parametrize("seed", [91, 92])
def test_cidr_is_valid_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    values: list[Any] = [cidr(rng) for _ in range(800)]
    values += ["::/0", "::1/128", "1.2.3.4/32", "1.2.3.4//8", "/8", 5, None, ["1.2.3.4/8"]]
    body = "results := {i: net.cidr_is_valid(v) | some i, v in input.values}\n"
    expected, actual = both(tmp_path, body, {"values": values})
    assert 50 < sum(1 for v in expected.values() if v is True) < len(values) - 100
    differences = mismatches(expected, actual, values)
    assert differences == [], "\n".join(differences[:30])
