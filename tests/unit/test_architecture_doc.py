"""docs/architecture.md is the design reference source comments cite: every `§N` they cite exists,
and nothing cites a design document outside the repository. Likewise every `docs/X.md#anchor` and
`docs/X.md "Heading"` cited in the code, config, README and docs names a heading that exists."""

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


DOC_LINK = re.compile(r"docs/([a-z-]+\.md)#([a-z0-9-]+)")
DOC_HEADING = re.compile(r'docs/([a-z-]+\.md) "([^"\n]+)"')
LINKING_FILES = ("server/sekisho", "tests", "policies", "config", "docs", "bench", "examples")


def _linking() -> list[Path]:
    files = [ROOT / "README.md"]
    for tree in LINKING_FILES:
        files += [
            p
            for p in (ROOT / tree).rglob("*")
            if p.is_file()
            and p.suffix in {".py", ".rego", ".toml", ".md", ".yml", ".yaml"}
            and "_gen" not in p.parts
            and p != Path(__file__).resolve()
        ]
    return files


def _headings(doc: str) -> list[str]:
    text = (ROOT / "docs" / doc).read_text()
    return [h.replace("`", "").strip() for h in re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def test_every_cited_doc_anchor_and_heading_exists() -> None:
    broken = []
    for path in _linking():
        text = path.read_text(errors="replace")
        where = str(path.relative_to(ROOT))
        for doc, anchor in DOC_LINK.findall(text):
            if anchor not in {_slug(h) for h in _headings(doc)}:
                broken.append(f"{where}: docs/{doc}#{anchor}")
        for doc, heading in DOC_HEADING.findall(text):
            # The heading, or its first words ("Revocation" for "Revocation: Token Status List").
            starts = re.compile(re.escape(heading) + r"(?![\w-])")
            if not any(starts.match(h) for h in _headings(doc)):
                broken.append(f'{where}: docs/{doc} "{heading}"')
    assert broken == []
