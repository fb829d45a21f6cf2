"""bench/stack.py, which every benchmark starts its server through: the server runs in a temporary
folder, so it must find the project's bin/opa without `make bench`'s PATH (the bench docstrings
say to run `.venv/bin/python bench/X.py`)."""

import shutil
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
from sekisho.config import load_settings
from sekisho.policy.toolchain import find_opa

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(REPO / "bench"))  # stack imports its sibling modules
    import stack as bench_stack

    return bench_stack


def test_a_bench_server_finds_the_projects_opa_without_bin_on_path(
    stack: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh machine: PATH without bin/ and no opa elsewhere on it.
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert shutil.which("opa") is None
    idp = SimpleNamespace(issuer="http://127.0.0.1:9", jwks_uri="http://127.0.0.1:9/jwks")
    config = stack.write_config(tmp_path, idp, stack.Settings())
    settings = load_settings(config)
    # What the embedded engine does at start (policy_components.folder_engine), from the
    # server's working directory: the bench's folder, which has no bin/.
    assert find_opa(settings.policy.opa_binary, tmp_path) == REPO / "bin" / "opa"
