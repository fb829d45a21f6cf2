"""regex.replace / regex.split / regex.find_n in the embedded engine match `opa eval` (Go's
regexp) on generated patterns, texts and replacement templates, invalid patterns included."""

import hashlib
import json
import random
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from sekisho.policy.wasm.builtins.goregexp import RegexCache, RegexUnsupportedError
from sekisho.policy.wasm.builtins.goregexp_names import GO_UNICODE_CLASSES
from sekisho.policy.wasm.builtins.goregexp_tables import GO_CLASS_RANGES
from sekisho.policy.wasm.builtins.regex import RegexBuiltins
from sekisho.policy.wasm.builtins.registry import BuiltinError
from sekisho.policy.wasm.builtins.regotext import Number
from sekisho.policy.wasm.instance import WasmEvaluationError

from tests.fakes.clock import FakeClock
from tests.unit.policy.wasm.differential import (
    both,
    mismatches,
    module_folder,
    opa_eval,
    wasm_policy,
)

BODY = """results := {
	"replace": {i: regex.replace(c.s, c.p, c.t) | some i, c in input.cases},
	"split": {i: regex.split(c.p, c.s) | some i, c in input.cases},
	"find_n": {i: regex.find_n(c.p, c.s, c.n) | some i, c in input.cases},
}
"""
ATOMS = [
    "a", "b", "é", "k", "K", "\u212a", "\u017f", "\u03a3", "\u03c3", "\u03c2", "1", "_", " ", "\\n", ".", "\\.", "\\$", "\\d",
    "\\D", "\\w", "\\W", "\\s", "\\S", "\\b", "\\B", "^", "$", "\\A", "\\z", "[a-c]", "[^b]",
    "[[:alpha:]]", "[[:^digit:]]", "[]a]", "[^\\n]", "\\pN", "\\PN", "\\pL", "[^\\pL]", "\\p{Greek}", "\\p{^Greek}",
    "\\p{Nd}", "\\p{Lu}", "\\x{e9}", "\\x41", "\\101", "\\Qa.\\E", "\\Q$", "\\t", "\\f", "\\v",
    "(?i)", "(?m)", "(?s)", "(?U)", "(?i:k)", "(?-i)", "",
]  # fmt: skip
QUANTIFIERS = ["", "", "", "*", "+", "?", "*?", "+?", "??", "{0,2}", "{2}", "{1,}", "{,2}"]
BROKEN = [
    "\\C", "(?P<é>a)", "a**", "(", "[", "\\", "\\1", "(?=a)", "a{1001}", "\\Z", "[z-a]",
    "(?P<n>a)(?P<n>b)", "x{2}{3}", "\\x{110000}", "(?<>a)", "(?P<1>a)",
]  # fmt: skip
TEMPLATES = [
    "$1", "${1}", "$n", "${n}", "$$", "$", "$1x", "${1}x", "${", "${n", "$0", "$01", "$2", "$10",
    "x", "é", "${é}", "$é", "$_", "$n-", "$ ", "$100000000", "-",
]  # fmt: skip
TEXT_ALPHABET = [
    "a",
    "b",
    "é",
    "k",
    "K",
    "\u212a",
    "\u017f",
    "\u03a3",
    "\u03c3",
    "\u03c2",
    "1",
    "_",
    " ",
    "\n",
    ".",
    "$",
    "\u0391",
]


def group(rng: random.Random, depth: int) -> str:
    opener = rng.choice(["(", "(", "(?:", "(?P<n>", "(?<m>"])
    inner = pattern(rng, depth + 1)
    if rng.random() < 0.3:
        inner += "|" + pattern(rng, depth + 1)
    return f"{opener}{inner})"


def pattern(rng: random.Random, depth: int = 0) -> str:
    parts = []
    for _ in range(rng.randint(1, 4)):
        atom = group(rng, depth) if depth < 2 and rng.random() < 0.25 else rng.choice(ATOMS)
        flag_only = atom.startswith("(?") and atom.endswith(")") and ":" not in atom
        repeatable = atom and (not flag_only or atom.startswith(("(?P", "(?<")))
        parts.append(atom + (rng.choice(QUANTIFIERS) if repeatable else ""))
    joined = "".join(parts)
    if depth == 0 and rng.random() < 0.1:
        joined = rng.choice(BROKEN) + joined if rng.random() < 0.5 else rng.choice(BROKEN)
    return joined


def case(rng: random.Random) -> dict[str, Any]:
    text = "".join(rng.choice(TEXT_ALPHABET) for _ in range(rng.choice([0, 1, 3, 8, 16])))
    template = "".join(rng.choice(TEMPLATES) for _ in range(rng.randint(0, 3)))
    count = rng.choice([-1, -1, 0, 1, 2, 5, 1.0, 2.5, -7])
    return {"p": pattern(rng), "s": text, "t": template, "n": count}


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_regex_builtins_match_opa(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    document = {"cases": [case(rng) for _ in range(700)]}
    expected, actual = both(tmp_path, BODY, document)
    differences = [
        f"{name}: {line}"
        for name in ("replace", "split", "find_n")
        for line in mismatches(expected[name], actual[name], document["cases"])
    ]
    assert differences == [], "\n".join(differences[:40])
    defined = sum(len(v) for v in expected.values())
    assert defined > 0.6 * 3 * 700  # most patterns are valid: the comparison is not empty
    assert len(expected["replace"]) < 700  # and some are not: invalid ones are compared too


EDGE_CASES = [
    ("replace", "abc", "x*", "-"),  # empty matches between every character
    ("replace", "aaa", "^a", "b"),  # ^ only at the start of the text, not of each search
    ("replace", "baaac", "a*", "-"),  # no second replacement for the empty match after a run
    ("replace", "abab", "(?P<x>a)(b)", "[$2${x}$1x$$$]"),  # Expand: $1x is the group "1x"
    ("replace", "ab", "(a)(b)", "$01 ${01} $0 ${2}$"),
    ("replace", "aé", "(?P<é>a)", "$é"),  # non-ASCII group name: Go refuses the pattern
    ("replace", "a", "a", "$\u0660"),  # Arabic-Indic digit: a name, not a number
    ("replace", "a.b", "\\Qa.\\E", "-"),
    ("replace", "ab", "\\C", "-"),  # RE2's any-byte escape: Go refuses it
    ("replace", "x\u00e9y", "", "-"),  # empty pattern: one replacement per character
    ("replace", "\u212akK", "(?i)k", "-"),  # the Kelvin sign folds to k in both
    ("split", "a,b,,c", ",", ""),
    ("split", "abc", "", ""),
    ("split", "", "a", ""),
    ("split", "", "", ""),
    ("split", "aXbX", "X", ""),
    ("split", "\u00e9\u00e9", "x*", ""),
    ("find_n", "ab\nab", "(?m)^a", 5),
    ("find_n", "aaaa", "a", 2),
    ("find_n", "aaaa", "a", 0),
    ("find_n", "aaaa", "a", 1.5),
    ("find_n", "aaaa", "a", 1.0),
    ("find_n", "abc", "x*", -1),
    ("find_n", "a\u00e9", "\\b", -1),
    ("find_n", "a" * 64, "(a|aa)*c", -1),
    ("replace", "ac", "(?P<n>b)?(?P<n>a)", "[$n]"),  # a duplicate name: the group that matched
    ("find_n", "a\U0002ebf0b\u2ffc", "\\pL+|\\p{So}", -1),  # Unicode 15.1 only in RE2's tables
    (
        "find_n",
        "a\U0002ebf0\U000e0080",
        "[^\\pL\\PC]",
        -1,
    ),  # unassigned: in Go's C  # exponential for a backtracking engine: RE2 is linear
]


def test_regex_edge_cases_match_opa(tmp_path: Path) -> None:
    cases = [{"f": f, "s": s, "p": p, "x": x} for f, s, p, x in EDGE_CASES]
    body = """results := {i: r |
	some i, c in input.cases
	r := call(c)
}
call(c) := regex.replace(c.s, c.p, c.x) if c.f == "replace"
call(c) := regex.split(c.p, c.s) if c.f == "split"
call(c) := regex.find_n(c.p, c.s, c.x) if c.f == "find_n"
"""
    expected, actual = both(tmp_path, body, {"cases": cases})
    assert mismatches(expected, actual, cases) == []
    assert len(expected) >= len(cases) - 4  # the invalid ones are undefined in both


CLASS_FORMS = ["\\P{%s}", "[\\p{%s}]", "[^\\p{%s}]", "[^\\P{%s}a]", "(?i)\\p{%s}", "\\p{^%s}"]


def class_patterns() -> list[str]:
    """Every name passed to RE2 or written out as ranges, and the rewritten ones in each form."""
    names = sorted(GO_UNICODE_CLASSES | set(GO_CLASS_RANGES))
    forms = [form % name for name in sorted(GO_CLASS_RANGES) for form in CLASS_FORMS]
    return [f"\\p{{{name}}}" for name in names] + forms + ["\\pL", "\\PL", "[\\pLx]"]


def test_unicode_classes_hold_what_go_holds_on_every_assigned_plane(tmp_path: Path) -> None:
    """Go's matches (opa eval, native) against this engine's (GoRegexp directly: the Wasm path
    is the test below) over every code point of planes 0-3 and 14 (where Unicode assigns
    characters other than private use) and every 257th of the others, in order. Each class is
    matched as runs (`(?:X)+`), so the matches are hundreds of runs, not 300,000 characters:
    the number of runs and the MD5 of their concatenation (every member, in order) are
    compared."""
    planes = [*range(0, 0x40000), *range(0xE0000, 0xF0000)]
    sparse = [*range(0x40000, 0xE0000, 257), *range(0xF0000, 0x110000, 257)]
    text = "".join(chr(cp) for cp in sorted(planes + sparse) if not 0xD800 <= cp <= 0xDFFF)
    patterns = [f"(?:{pattern})+" for pattern in class_patterns()]
    body = """results := {p: [count(m), crypto.md5(concat("", m))] |
	some p in input.patterns
	m := regex.find_n(p, input.text, -1)
}
"""
    expected = opa_eval(module_folder(tmp_path, body), {"patterns": patterns, "text": text})
    regex = RegexBuiltins()
    different = []
    for pattern in patterns:
        found = regex.find_n(pattern, text, Number("-1"))  # as the engine hands it over
        ours = [len(found), hashlib.md5("".join(found).encode()).hexdigest()]  # noqa: S324
        if expected.get(pattern) != ours:
            different.append(f"{pattern}: go {expected.get(pattern)}, ours {ours}")
    assert different == []
    assert len(expected) == len(patterns)  # Go accepts every one of them


def test_unicode_classes_through_the_engine_match_opa(tmp_path: Path) -> None:
    """The same patterns through the Wasm path, on every 29th code point of planes 0-2 and 14."""
    sample = "".join(
        chr(cp) for cp in range(0, 0x30000, 29) if not 0xD800 <= cp <= 0xDFFF
    ) + "".join(chr(cp) for cp in range(0xE0000, 0xE01F0, 7))
    patterns = class_patterns()
    body = "results := {p: regex.find_n(p, input.text, -1) | some p in input.patterns}\n"
    expected, actual = both(tmp_path, body, {"patterns": patterns, "text": sample})
    assert sorted(expected) == sorted(patterns)
    assert [p for p in patterns if expected[p] != actual[p]] == []


@pytest.mark.parametrize(
    "pattern",
    ["\\p{greek}", "\\p{Letter}", "\\p{Old_Italic}", "[\\p{Nag_Mundari}]", "\\p{Hani}"],
)
def test_unverified_unicode_class_traps_instead_of_deciding_differently(
    tmp_path: Path, pattern: str
) -> None:
    """Go looks class names up case-insensitively with aliases and has other tables; a name not
    verified equal must not silently give another decision: the evaluation fails (a deny)."""
    root = module_folder(tmp_path, 'results := regex.replace("a", input.p, "-")\n')
    opa_eval(root, {"p": pattern})  # whatever Go decides, ours must not be a different value
    with pytest.raises(WasmEvaluationError, match="Unicode class"):
        wasm_policy(root).evaluate(json.dumps({"p": pattern}).encode())


def test_pattern_too_large_for_re2_traps(tmp_path: Path) -> None:
    root = module_folder(tmp_path, 'results := regex.find_n(input.p, "a", -1)\n')
    pattern = "a{1000}" * 2000  # Go compiles this (no match: []); RE2's memory budget does not
    assert opa_eval(root, {"p": pattern}) == []
    with pytest.raises(WasmEvaluationError, match="too large"):
        wasm_policy(root).evaluate(json.dumps({"p": pattern}).encode())


def test_cache_is_bounded_and_evicts_least_recently_used() -> None:
    cache = RegexCache(size=2)
    first = cache.get("a")
    cache.get("b")
    assert cache.get("a") is first  # a hit: "a" becomes the most recent
    cache.get("c")  # evicts "b"
    assert len(cache) == 2
    assert cache.get("a") is first
    with pytest.raises(BuiltinError):
        cache.get("(")
    with pytest.raises(RegexUnsupportedError):
        cache.get("\\p{greek}")
    assert len(cache) == 2  # failures are not cached


def test_cache_shared_by_pool_threads_never_raises_or_mixes_up_patterns() -> None:
    """One cache serves every instance of a loaded policy's pool, on several threads at once:
    a hit evicted by another thread between lookup and move_to_end raised KeyError unlocked
    (a trap, so a spurious deny). Eight threads cycle five patterns through a 2-entry cache
    with a 1 µs switch interval; unlocked this raised KeyError in every run tried."""
    cache = RegexCache(size=2)
    patterns = [f"p{i}" for i in range(5)]
    start, failures = threading.Barrier(8), []

    def hammer() -> None:
        start.wait()
        try:
            for n in range(3000):
                pattern = patterns[n % len(patterns)]
                assert cache.get(pattern).search(pattern.encode(), 0) == [(0, len(pattern))]
        except Exception as exc:
            failures.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    assert len(cache) == 2


def test_each_builtin_table_has_its_own_cache() -> None:
    from sekisho.policy.wasm.builtins.catalog import host_builtins

    first, second = host_builtins(FakeClock()), host_builtins(FakeClock())
    first["regex.split"].call("a", "bab")
    assert first["regex.split"].call is not second["regex.split"].call
