"""regex.template_match in the embedded engine matches `opa eval` on generated templates (literal
text with regex metacharacters, delimited expressions, nested and unbalanced delimiters, parts
that do not compile alone) and values built to match them, mutated or not."""

import random
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins.regextemplate import delimiter_indices, quote_meta

from tests.unit.policy.wasm.differential import both, mismatches

BODY = """results := {i: regex.template_match(c.t, c.v, c.s, c.e) | some i, c in input.cases}
"""
# An expression (written with `{` `}` where it contains the delimiters) and texts it matches.
PARTS = [
    ("[a-z]+", ["abc", "x"]),
    (".*", ["", "a:b", "é.{"]),
    ("\\d{2}", ["12"]),
    ("a|b", ["a", "b"]),
    ("(?i)k", ["K", "k", "\u212a"]),
    ("[^:]*", ["", "ab", "é"]),
    ("x{1,2}", ["x", "xx"]),  # delimiters nested inside an expression
    ("(a)(b)", ["ab"]),
    ("", [""]),
    ("\\pL+", ["é", "ab"]),
    ("^a", ["a"]),
    ("a$", ["a"]),
    ("(?m)a$", ["a"]),
    ("(?P<n>a)", ["a"]),
    ("\\Q.{\\E", [".{"]),  # PARTS[:15] compile alone (this one not always delimited)
    ("a)(b", ["ab"]),  # compiles only inside the whole pattern: Go refuses the part
    ("*", ["*"]),
    ("\\", ["\\"]),
    ("\\C", ["a"]),  # RE2 alone accepts it
]
LITERALS = ["urn:", "a", "b", ":", "/", "é", ""] * 3 + list(".*$^()[]\\|+")
DELIMITERS = [("{", "}")] * 8 + [("<", ">")] * 4 + [("(", ")"), ("[", "]"), ("|", "|"), (":", ".")]
BAD_DELIMITERS = [("", "}"), ("{", ""), ("{{", "}"), ("é", "}"), ("{", "\u00e9"), (1, "}")]


def swap(text: str, start: str, end: str) -> str:
    return text.replace("{", "\0").replace("}", "\1").replace("\0", start).replace("\1", end)


def template(rng: random.Random, start: str, end: str) -> tuple[str, str]:
    """A template with its delimiters and a value built to match it."""
    out, value = [], []
    for _ in range(rng.randint(0, 3)):
        literal = "".join(rng.choice(LITERALS) for _ in range(rng.randint(0, 3)))
        expression, samples = rng.choice(PARTS if rng.random() < 0.3 else PARTS[:15])
        out.append(literal + start + swap(expression, start, end) + end)
        value.append(literal + swap(rng.choice(samples), start, end))
    tail = "".join(rng.choice(LITERALS) for _ in range(rng.randint(0, 2)))
    text, matching = "".join(out) + tail, "".join(value) + tail
    if rng.random() < 0.1:  # unbalanced
        text = rng.choice([start + text, text + end, end + text])
    return text, matching


def mutate(rng: random.Random, value: str) -> str:
    if not value or rng.random() < 0.2:
        return value + rng.choice([*LITERALS, "\n"])
    i = rng.randrange(len(value))
    return value[:i] + rng.choice(["", "a", "1", "\n", "é", "K"]) + value[i + 1 :]


def case(rng: random.Random) -> dict[str, Any]:
    start, end = rng.choice(DELIMITERS)
    text, value = template(rng, start, end)
    if rng.random() < 0.4:
        value = mutate(rng, value)
    if rng.random() < 0.05:
        start, end = rng.choice(BAD_DELIMITERS)
    return {"t": text, "v": value, "s": start, "e": end}


@pytest.mark.parametrize("seed", [61, 62, 63])
def test_template_match_matches_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    cases = [case(rng) for _ in range(800)]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    differences = mismatches(expected, actual, cases)
    assert differences == [], "\n".join(differences[:40])
    outcomes = list(expected.values())
    assert outcomes.count(True) > 200 and outcomes.count(False) > 200  # both answers compared
    assert len(outcomes) < len(cases) - 150  # and undefined ones (refused templates) too


EDGE_CASES = [
    ("urn:foo:{.*}", "urn:foo:bar:baz", "{", "}"),
    ("urn:foo.{[a-z]+}", "urnXfoo.bar", "{", "}"),  # the literal `.` is quoted
    ("{a}", "a\n", "{", "}"),  # `$` is the end of text, not before a final newline
    ("a{b{c}d}e", "abcde", "{", "}"),  # nested: one expression `b{c}d`, `{c}` a repeat
    ("a{b}c}", "abc", "{", "}"),  # a close before any open
    ("{a}}", "a", "{", "}"),
    ("|a|", "a", "|", "|"),  # the same byte only ever opens: unbalanced
    ("a", "a", "|", "|"),
    ("", "", "{", "}"),
    ("", "x", "{", "}"),
    ("{}", "", "{", "}"),
    ("x{(?i)k}y", "x\u212ay", "{", "}"),  # a flag inside a part is scoped to its group
    ("x{(?i)k}Y", "xky", "{", "}"),
    ("{a)(b}", "ab", "{", "}"),  # the part alone does not compile
    ("é{.}é", "éxé", "{", "}"),
    ("a<b>c", "abc", "<", ">"),
    ("a<b>c", "a<b>c", "{", "}"),  # other delimiters: all literal
    ("{.*}", "anything", "{", "é"),  # a two-byte delimiter
    ("{.*}", "anything", "{{", "}"),
    ("{\\p{greek}}", "a", "<", ">"),  # literal: the class is quoted, never compiled
]


def test_template_match_edge_cases_match_opa(tmp_path: Path) -> None:
    cases = [{"t": t, "v": v, "s": s, "e": e} for t, v, s, e in EDGE_CASES]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    assert mismatches(expected, actual, cases) == []
    refused = {
        str(i) for i, c in enumerate(EDGE_CASES) if c[0] in ("a{b}c}", "{a}}", "|a|", "{a)(b}")
    }
    refused |= {"17", "18"}  # the delimiters that are not one byte
    assert set(map(str, range(len(cases)))) - set(expected) == refused


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("a.b", "a\\.b"),
        ("\\.+*?()|[]{}^$", "\\\\\\.\\+\\*\\?\\(\\)\\|\\[\\]\\{\\}\\^\\$"),
        ("é-", "é-"),
    ],
)
def test_quote_meta_is_gos(text: str, quoted: str) -> None:
    assert quote_meta(text) == quoted


def test_delimiters_nest_and_the_outermost_pair_counts() -> None:
    assert delimiter_indices("a{b{c}d}e{f}", "{", "}") == [1, 8, 9, 12]
