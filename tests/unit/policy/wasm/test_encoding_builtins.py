"""String, encoding, digest and glob host builtins match `opa eval` on generated strings."""

import random
from pathlib import Path
from typing import Any

import pytest

from tests.unit.policy.wasm.differential import both, mismatches

BUILTINS_1 = [
    "hex.encode",
    "hex.decode",
    "base64url.encode_no_pad",
    "urlquery.encode",
    "urlquery.decode",
    "crypto.md5",
    "crypto.sha1",
    "crypto.sha256",
    "glob.quote_meta",
]
BUILTINS_2 = [
    "strings.any_prefix_match",
    "strings.any_suffix_match",
    "strings.count",
    "crypto.hmac.md5",
    "crypto.hmac.sha1",
    "crypto.hmac.sha256",
    "crypto.hmac.sha512",
    "crypto.hmac.equal",
]
ALPHABET = [
    "a",
    "b",
    "Z",
    "0",
    "9",
    " ",
    "+",
    "%",
    "%2",
    "%zz",
    "%41",
    "~",
    "-",
    "_",
    ".",
    "*",
    "?",
    "[",
    "]",
    "{",
    "}",
    "\\",
    "é",
    "日",
    "😀",
    "/",
    "&",
    "=",
    "ab",
    "e9",
    "c3a9",
]


def text(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))


def operand(rng: random.Random) -> Any:
    return text(rng) if rng.random() < 0.6 else [text(rng) for _ in range(rng.randint(0, 3))]


def body() -> str:
    lines = (
        [f'\t"{name}": {{i: {name}(c.a) | some i, c in input.cases}},' for name in BUILTINS_1]
        + [
            f'\t"{name}": {{i: {name}(c.a, c.b) | some i, c in input.cases}},'
            for name in BUILTINS_2
            if not name.startswith("strings.any")
        ]
        + [
            f'\t"{name}": {{i: {name}(c.x, c.y) | some i, c in input.cases}},'
            for name in BUILTINS_2
            if name.startswith("strings.any")
        ]
    )
    return "results := {\n" + "\n".join(lines) + "\n}\n"


@pytest.mark.parametrize("seed", [31, 32])
def test_encoding_builtins_match_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [
        {"a": text(rng), "b": text(rng), "x": operand(rng), "y": operand(rng)} for _ in range(300)
    ]
    for case in cases[:40]:  # hex.decode and urlquery.decode get well-formed inputs too
        case["a"] = rng.choice(
            [case["a"].encode().hex(), "%41%2B+b", "c3a9", "e6", "%e6", "e697", "%e6%97A"]
        )
    expected, actual = both(tmp_path, body(), {"cases": cases})
    differences = [
        f"{name}: {line}"
        for name in expected
        for line in mismatches(expected[name], actual.get(name), cases)
    ]
    assert differences == [], "\n".join(differences[:30])
    assert set(actual) == set(expected) == set(BUILTINS_1 + BUILTINS_2)
