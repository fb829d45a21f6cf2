"""A doc that names a constant with its value (security.md: "`MAX_REDIRECTS` (5)") states the
code's value: each limit is written once, in the code, and a doc quoting it cannot drift from it
(the default request bound has its own test, tests/unit/rpc/test_request_bound.py)."""

import ast
import importlib
import re
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SERVER = REPO / "server"
# `NAME` (VALUE: a number, with thousands commas or a decimal point, or in hex.
CITATION = re.compile(r"`([A-Z][A-Z0-9_]{3,})` \((0x[0-9a-fA-F]+|\d[\d,]*(?:\.\d+)?)")


def _citations(text: str) -> list[tuple[str, float]]:
    """(constant name, the value the text states) for each citation in `text`."""
    return [
        (name, float(int(value, 16)) if value.startswith("0x") else float(value.replace(",", "")))
        for name, value in CITATION.findall(text)
    ]


def _defined(names: set[str]) -> dict[str, list[float]]:
    """The numeric module-level constants of server/sekisho among `names`: name -> values (one
    per module defining it; a name some module binds to a string is not counted)."""
    found: dict[str, list[float]] = {}
    for path in sorted((SERVER / "sekisho").rglob("*.py")):
        module = ".".join(path.relative_to(SERVER).with_suffix("").parts)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", 0)]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in names:
                    value = getattr(importlib.import_module(module), target.id)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        found.setdefault(target.id, []).append(float(value))
    return found


def _mismatches(docs: Iterable[tuple[str, str]], defined: dict[str, list[float]]) -> list[str]:
    """Each citation in (doc name, text) whose value is not that of the one constant so named."""
    return [
        f"{doc}: `{name}` ({stated:g}); the code: {defined.get(name, 'no such constant')}"
        for doc, text in docs
        for name, stated in _citations(text)
        if defined.get(name) != [stated]
    ]


def test_every_constant_a_doc_quotes_has_the_value_it_states() -> None:
    docs = [(str(path.relative_to(REPO)), path.read_text(encoding="utf-8")) for path in DOCS]
    cited = {name for _, text in docs for name, _ in _citations(text)}
    assert len(cited) >= 10  # the pattern still finds the docs' citations
    assert _mismatches(docs, _defined(cited)) == []


def test_the_check_catches_a_stale_or_unknown_constant() -> None:
    doc = "at most `MAX_REDIRECTS` (1,024) … `INVALID` (0x01) … `NO_SUCH_LIMIT` (3 s)"
    assert _citations(doc) == [("MAX_REDIRECTS", 1024), ("INVALID", 1), ("NO_SUCH_LIMIT", 3)]
    found = _mismatches([("doc.md", doc)], {"MAX_REDIRECTS": [5.0], "INVALID": [1.0]})
    assert found == [
        "doc.md: `MAX_REDIRECTS` (1024); the code: [5.0]",
        "doc.md: `NO_SUCH_LIMIT` (3); the code: no such constant",
    ]
