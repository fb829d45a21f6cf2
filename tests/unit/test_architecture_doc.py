"""docs/architecture.md is the design reference source comments cite: every `§N` they cite exists,
and nothing cites a design document outside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
CITED_TREES = ("server/sekisho", "tests", "policies", "proto")
CITATION = re.compile(r"docs/architecture\.md(?:\s+|\s*\n\s*#?\s*)(?:§|section )(\d+)")


def _sources() -> list[Path]:
    files = []
    for tree in CITED_TREES:
        files += [
            p
            for p in (ROOT / tree).rglob("*")
            if p.is_file()
            and p.suffix in {".py", ".rego", ".proto", ".json"}
            and "_gen" not in p.parts
        ]
    return files


def _sections() -> set[str]:
    return set(re.findall(r"^## (\d+)\. ", DOC.read_text(), flags=re.MULTILINE))


def test_every_cited_section_exists() -> None:
    sections = _sections()
    cited = {
        (str(path.relative_to(ROOT)), number)
        for path in _sources()
        for number in CITATION.findall(path.read_text(errors="replace"))
    }
    assert cited, "source comments are expected to cite docs/architecture.md"
    assert {(path, n) for path, n in cited if n not in sections} == set()


def test_no_citation_of_a_document_outside_the_repository() -> None:
    outside = re.compile(r"ARCHITECTURE(\.md| §)")
    stale = [
        str(path.relative_to(ROOT))
        for path in _sources()
        if path != Path(__file__).resolve() and outside.search(path.read_text(errors="replace"))
    ]
    assert stale == []
