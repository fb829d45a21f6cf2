"""The tests find opa as the service does (tests/opa.py, sekisho.policy.toolchain.find_opa):
`[policy] opa_binary`, else `opa` on PATH, else the repository's bin/opa; and a `sekisho serve`
they start in a temporary folder (no bin/ there) is given that opa first on its PATH, as
`make test` does, so the tests pass whatever PATH pytest was run with."""

import shutil
from pathlib import Path

import pytest

from tests.opa import OPA_BINARY_VARIABLE, REPO, opa_binary, with_opa_on_path

BIN_OPA = REPO / "bin" / "opa"


def test_without_opa_on_path_the_repository_bin_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(OPA_BINARY_VARIABLE, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no opa on it
    assert opa_binary() == BIN_OPA
    started_with = with_opa_on_path({"PATH": str(tmp_path)})
    assert shutil.which("opa", path=started_with["PATH"]) == str(BIN_OPA)
    assert started_with["PATH"].endswith(str(tmp_path))  # the rest of PATH kept, after it


def test_the_configured_opa_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = tmp_path / "tools" / "opa-1.x"
    configured.parent.mkdir()
    configured.write_text(f'#!/bin/sh\nexec "{BIN_OPA}" "$@"\n', encoding="utf-8")
    configured.chmod(0o755)
    monkeypatch.setenv(OPA_BINARY_VARIABLE, str(configured))
    assert opa_binary() == configured
    monkeypatch.setenv(OPA_BINARY_VARIABLE, str(tmp_path / "missing"))
    with pytest.raises(pytest.fail.Exception, match="is not executable"):
        opa_binary()  # named but absent: fails, as the service refuses to start
