"""Rego → Wasm with OPA's own compiler: `opa build -t wasm` on the policy folder.

Only modules go in: `_test.rego` files and every JSON/YAML file are left out, because the data
documents are loaded into each instance at run time (so a data-only edit needs no recompile).
"""

import json
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from sekisho.errors import PolicyLoadError
from sekisho.policy.source import load_source
from sekisho.policy.toolchain import run_binary
from sekisho.policy.wasm.bundle import read_bundle
from sekisho.policy.wasm.signing import signing_algorithm

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


@dataclass(frozen=True, slots=True)
class BundleSigning:
    """`opa build --signing-key/--signing-alg` (and a scope claim when set)."""

    key: Path
    algorithm: str | None  # `sekisho policy build --signing-alg`; None = the key's type's
    scope: str = ""


def build_bundle(
    opa: Path,
    root: Path,
    entrypoint: str,
    output: Path,
    *,
    revision: str = "",
    signing: BundleSigning | None = None,
    timeout_seconds: float = 120.0,
) -> str | None:
    """A standard OPA Wasm bundle of the folder as Sekisho loads it: its modules (tests left out)
    and its data/*.json merged into /data.json, built and optionally signed by `opa build -b`.

    Creates the output's folder when missing (CI writes to a fresh `dist/`). Returns the
    signature's algorithm (None when unsigned).

    Raises: PolicyLoadError (the folder does not load, the signing key file is missing, cannot
    sign the algorithm or implies none, or OPA refuses it).
    """
    source = load_source(root)
    if signing is not None and not signing.key.is_file():
        # opa reads a --signing-key that is not a file as the PEM text itself, and then says only
        # "failed to parse PEM block containing the key".
        raise PolicyLoadError(f"signing key {signing.key}: no such file")
    algorithm = signing_algorithm(signing.key, signing.algorithm) if signing else None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolicyLoadError(f"cannot write the bundle to {output}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix="sekisho-bundle-") as scratch:
        stage = Path(scratch) / "bundle"
        for name, text in source.modules.items():
            (stage / name).parent.mkdir(parents=True, exist_ok=True)
            (stage / name).write_text(text, encoding="utf-8")
        (stage / "data.json").write_text(json.dumps(source.data), encoding="utf-8")
        args = ["build", "-b", "-t", "wasm", "-e", entrypoint, "--ignore", "*_test.rego"]
        args += ["--revision", revision] if revision else []
        if signing is not None and algorithm is not None:
            args += _signing_args(replace(signing, algorithm=algorithm), Path(scratch))
        try:
            # Run in the stage so the bundle's file names are the folder's own (sekisho/…).
            args += ["-o", str(output.resolve()), "."]
            completed = run_binary(opa, args, None, timeout_seconds, cwd=stage)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PolicyLoadError(f"cannot run {opa} build: {exc}") from exc
    if completed.returncode != 0:
        message = (completed.stderr or completed.stdout).strip()
        raise PolicyLoadError(f"opa build -b failed: {message}")
    return algorithm


def _signing_args(signing: BundleSigning, scratch: Path) -> list[str]:
    # Absolute: opa runs in the staging folder, where a relative path names nothing.
    args = ["--signing-key", str(signing.key.resolve()), "--signing-alg", str(signing.algorithm)]
    if signing.scope:
        claims = scratch / "claims.json"
        claims.write_text(json.dumps({"scope": signing.scope}), encoding="utf-8")
        args += ["--claims-file", str(claims)]
    return args
