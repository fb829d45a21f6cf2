"""The opa (and regal) binaries, run for policy authors by `sekisho policy test|check|eval`.

OPA gets a policy folder the way Sekisho reads it (source.py): every .rego file, and each
data/*.json file at the root of `data`. `opa test` also gets the corpus folder tests/ (its case
files load as data.cases) and the input schema as data.schemas.input; `opa check` type-checks
every `input.…` reference against the schema (`--schema`).
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sekisho.errors import ConfigError

SCHEMA_DATA_PATH = "schemas.input"


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_opa(configured: str, cwd: Path) -> Path:
    """`[policy] opa_binary`, else `opa` on PATH, else ./bin/opa. Raises: ConfigError."""
    if configured:
        found = shutil.which(configured) if "/" not in configured else configured
        if found is None or not _executable(Path(found)):
            raise ConfigError(f"config key 'policy.opa_binary': {configured} is not executable")
        return Path(found)
    on_path = shutil.which("opa")
    if on_path is not None:
        return Path(on_path)
    local = cwd / "bin" / "opa"
    if _executable(local):
        return local
    raise ConfigError(
        "config key 'policy.opa_binary': no opa on PATH or in ./bin (`make setup` builds it)"
    )


def find_regal(opa: Path) -> Path | None:
    """`regal` on PATH, or beside the opa binary (the Makefile's bin/), if installed."""
    on_path = shutil.which("regal")
    if on_path is not None:
        return Path(on_path)
    beside = opa.parent / "regal"
    return beside if _executable(beside) else None


def run_binary(
    binary: Path,
    args: list[str],
    stdin: str | None = None,
    timeout_seconds: float = 300.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a tool and capture its output. Raises: OSError, subprocess.TimeoutExpired."""
    return subprocess.run(  # noqa: S603 - a configured or discovered binary, arguments as a list
        [str(binary), *args],
        input=stdin,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_seconds,
    )


@dataclass(frozen=True, slots=True)
class PolicyFolder:
    """A policy folder and the OPA arguments that load it."""

    root: Path

    @property
    def tests(self) -> Path:
        return self.root / "tests"

    @property
    def schema(self) -> Path:
        return self.root / "schemas" / "input.json"

    def rego_files(self) -> list[Path]:
        """Every module, tests included, except the corpus folder's (passed as a root)."""
        return sorted(p for p in self.root.rglob("*.rego") if self.tests not in p.parents)

    def data_files(self) -> list[Path]:
        return sorted((self.root / "data").glob("*.json"))

    def load_args(self) -> list[str]:
        """Modules and data exactly as the embedded engine sees them."""
        return [str(p) for p in (*self.rego_files(), *self.data_files())]

    def check_args(self) -> list[str]:
        schema = ["--schema", str(self.schema)] if self.schema.is_file() else []
        tests = [str(self.tests)] if self.tests.is_dir() else []
        return ["check", "--strict", *schema, *self.load_args(), *tests]

    def test_args(self) -> list[str]:
        tests = [str(self.tests)] if self.tests.is_dir() else []
        schema = [f"{SCHEMA_DATA_PATH}:{self.schema}"] if self.schema.is_file() else []
        return [*self.load_args(), *tests, *schema]


class OpaToolchain:
    """Runs opa subcommands; output is returned, never printed here."""

    def __init__(self, opa: Path, timeout_seconds: float = 300.0) -> None:
        self.opa = opa
        self._timeout = timeout_seconds

    def run(self, args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `opa ARGS`. Raises: OSError, subprocess.TimeoutExpired."""
        return run_binary(self.opa, args, stdin, self._timeout)

    def builtins(self) -> dict[str, dict[str, Any]]:
        """OPA's builtin functions by name (`opa capabilities --current`)."""
        completed = self.run(["capabilities", "--current"])
        if completed.returncode != 0:
            raise OSError(f"opa capabilities failed: {completed.stderr.strip()}")
        return {entry["name"]: entry for entry in json.loads(completed.stdout)["builtins"]}

    def parse(self, module: Path) -> dict[str, Any]:
        """The module's AST with locations. Raises: OSError when it does not parse."""
        args = ["parse", "--format", "json", "--json-include", "locations", str(module)]
        completed = self.run(args)
        if completed.returncode != 0:
            raise OSError(f"opa parse {module}: {completed.stderr.strip()}")
        result: dict[str, Any] = json.loads(completed.stdout)
        return result

    def evaluate(
        self, folder: PolicyFolder, query: str, document: Any, explain: bool = False
    ) -> dict[str, Any]:
        """`opa eval` of `query` with `document` as input: {"result": …, "explanation": …}.

        Raises: OSError when OPA fails.
        """
        loads = [arg for path in folder.load_args() for arg in ("-d", path)]
        explained = ["--explain", "full"] if explain else []
        completed = self.run(
            ["eval", "--format", "json", *explained, *loads, "--stdin-input", query],
            stdin=json.dumps(document),
        )
        if completed.returncode != 0:
            raise OSError(f"opa eval: {completed.stderr.strip() or completed.stdout.strip()}")
        output: dict[str, Any] = json.loads(completed.stdout)
        return output


def eval_value(output: dict[str, Any]) -> Any:
    """The query's value in `opa eval` JSON output, or None when undefined."""
    results = output.get("result") or []
    return results[0]["expressions"][0]["value"] if results else None


def producing_rule(output: dict[str, Any], query: str) -> str | None:
    """`file:row` of the rule (or else branch) that produced the query's value, from a full
    explanation: the last top-level Exit from a rule named like the query's last segment."""
    name = query.rsplit(".", 1)[-1]
    found = None
    for event in output.get("explanation") or []:
        node = event.get("Node")
        if event.get("Op") != "Exit" or event.get("ParentID") != 0 or not isinstance(node, dict):
            continue
        head = node.get("head") or {}
        if head.get("name") == name:
            where = event.get("Location") or {}
            found = f"{where.get('file', '?')}:{where.get('row', '?')}"
    return found
