"""Rego → Wasm with OPA's own compiler: `opa build -t wasm` on the policy folder.

Only modules go in: `_test.rego` files and every JSON/YAML file are left out, because the data
documents are loaded into each instance at run time (so a data-only edit needs no recompile).
"""

import subprocess
import tempfile
from pathlib import Path

from sekisho.errors import PolicyLoadError
from sekisho.policy.toolchain import run_binary
from sekisho.policy.wasm.bundle import read_bundle

_IGNORED = ("*_test.rego", "*.json", "*.yaml", "*.yml", ".*")


def entrypoint_of(query: str) -> str:
    """`data.sekisho.exchange.decision` → `sekisho/exchange/decision`."""
    return "/".join(query.split(".")[1:])


def build_args(root: Path, entrypoint: str, output: Path) -> list[str]:
    """`opa build` arguments for a Wasm bundle of the folder's modules."""
    ignores = [arg for pattern in _IGNORED for arg in ("--ignore", pattern)]
    return ["build", "-t", "wasm", "-e", entrypoint, *ignores, "-o", str(output), str(root)]


def compile_folder(opa: Path, root: Path, entrypoint: str, timeout_seconds: float) -> bytes:
    """The policy.wasm OPA compiles from the folder. Raises: PolicyLoadError with OPA's message."""
    with tempfile.TemporaryDirectory(prefix="sekisho-opa-build-") as scratch:
        output = Path(scratch) / "bundle.tar.gz"
        try:
            completed = run_binary(opa, build_args(root, entrypoint, output), None, timeout_seconds)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PolicyLoadError(f"cannot run {opa} build: {exc}") from exc
        if completed.returncode != 0:
            message = (completed.stderr or completed.stdout).strip()
            raise PolicyLoadError(f"policy does not compile (opa build): {message}")
        return read_bundle(output.read_bytes()).wasm
