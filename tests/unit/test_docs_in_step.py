"""Docs describe the product as it is (issue 19, class 7).

Every statement in docs/ and the README that something is absent ("not yet available", "not part
of this version", "is not authenticated", "listeners are plaintext", a "not yet available" table
column) is checked against the code: if it names a capability the code has, the test fails with
the file and line. A capability is a keyword and a probe of the code that provides it, so a doc
line goes stale the moment the feature lands, not when a reviewer happens to notice.
"""

import importlib
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sekisho.config import ServerConfig

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

ABSENCE = re.compile(
    r"(?i)not yet available|not part of this version|not yet supported|not yet implemented|"
    r"is not authenticated|are plaintext|is plaintext|planned but absent"
)


def _module(name: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            importlib.import_module(name)
        except ImportError:
            return False
        return True

    return probe


def _server_setting(name: str) -> Callable[[], bool]:
    return lambda: name in ServerConfig.model_fields


# keyword (regex) → probe: does the code have it?
CAPABILITIES: dict[str, Callable[[], bool]] = {
    r"(?i)\bmTLS\b|caller (itself )?(is not )?authenticat|caller authentication|SPIFFE": (
        _server_setting("client_ca_file")
    ),
    r"(?i)listeners? (are|is) plaintext|\bTLS\b": _server_setting("tls_cert_file"),
    r"(?i)token endpoint|RFC 8693 (form|token)": _module("sekisho.http.token"),
    r"(?i)ext_authz|Check`?\b.*Envoy|Envoy": _module("sekisho.rpc.ext_authz"),
    r"(?i)OPA server engine|engine = \"opa\"": _module("sekisho.policy.opa.engine"),
    r"(?i)\bKMS\b": _module("sekisho.signing.kms"),
    r"(?i)rotation|revocation commands|keys revoke": _module("sekisho.signing.rotation"),
    r"(?i)rate limit": _module("sekisho.admission"),
    r"(?i)token cache": _module("sekisho.client.cache"),
}


def _absence_statements(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each statement that something is absent."""
    column: int | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        cells = (
            [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        )
        if cells and any(ABSENCE.search(c) for c in cells):
            column = next(i for i, c in enumerate(cells) if ABSENCE.search(c))
            continue  # a table header: the column below holds the absences
        if cells and column is not None:
            if column < len(cells) and not set(cells[column]) <= set("-: "):
                yield number, cells[column]
            continue
        column = None
        if ABSENCE.search(line):
            yield number, line


def test_docs_never_call_an_existing_capability_absent() -> None:
    stale = [
        f"{path.relative_to(REPO)}:{number}: {pattern!r} exists, but the doc says: {text.strip()}"
        for path in DOCS
        for number, text in _absence_statements(path)
        for pattern, exists in CAPABILITIES.items()
        if re.search(pattern, text) and exists()
    ]
    assert stale == []


def test_the_checker_catches_a_stale_line(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Caller authentication (mTLS) is not yet available.\n\n"
        "| area | in 0.1 | not yet available |\n|---|---|---|\n| API | gRPC | Envoy ext_authz |\n",
        encoding="utf-8",
    )
    found = [text for _, text in _absence_statements(doc)]
    assert found == ["Caller authentication (mTLS) is not yet available.", "Envoy ext_authz"]


@pytest.mark.parametrize("pattern", list(CAPABILITIES))
def test_every_probe_finds_its_capability(pattern: str) -> None:
    # A probe that cannot find what exists would let every stale line through.
    assert CAPABILITIES[pattern]()
