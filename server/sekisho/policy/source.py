"""Reading a policy directory: Rego modules and the JSON data documents beside them.

Layout: every `*.rego` under the directory except `*_test.rego` is a module; every
`data/*.json` file is one JSON object merged at the root of `data` (the same place OPA puts it
when the data folder is given as a root: `opa run -s policies/sekisho policies/data`).
A directory with only .rego files (no data/) is valid.
"""

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sekisho.errors import PolicyLoadError


@dataclass(frozen=True, slots=True)
class PolicySource:
    """The text of every module and the merged data document."""

    modules: dict[str, str]
    data: dict[str, Any] = field(default_factory=dict)


def module_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.rego") if not p.name.endswith("_test.rego"))


def data_files(root: Path) -> list[Path]:
    return sorted((root / "data").glob("*.json"))


def load_source(root: Path) -> PolicySource:
    """Read modules and data. Raises: PolicyLoadError naming the offending file."""
    if not root.is_dir():
        raise PolicyLoadError(f"policy path {root} is not a directory")
    modules: dict[str, str] = {}
    for path in module_files(root):
        modules[str(path.relative_to(root))] = _read(path)
    if not modules:
        raise PolicyLoadError(f"no .rego modules under {root}")
    data: dict[str, Any] = {}
    for path in data_files(root):
        try:
            document = json.loads(_read(path))
        except ValueError as exc:
            raise PolicyLoadError(f"{path.name}: invalid JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise PolicyLoadError(f"{path.name}: a data file must hold a JSON object")
        refuse_lone_surrogates(document, path.name)
        _merge(data, document, path.name, ())
    return PolicySource(modules=modules, data=data)


def source_fingerprint(source: PolicySource) -> str:
    """SHA-256 of the module texts (by name) and of the merged data: what a policy folder holds
    as the engines load it, so two reads fingerprint alike exactly when they give one policy
    (files no engine reads, a `_test.rego` or a README, count for nothing).
    PolicyRuntime.changed_since_load compares it."""
    digest = hashlib.sha256()
    for name, text in sorted(source.modules.items()):
        digest.update(f"{len(name)}:{name}{len(text)}:{text}".encode())
    data = json.dumps(source.data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest.update(data.encode())
    return digest.hexdigest()


def refuse_lone_surrogates(document: Any, name: str) -> None:
    """Refuse a JSON document holding half of a surrogate pair (`"\\ud800"` alone: valid JSON).

    Python keeps it as is and cannot encode it, so the embedded engine failed to load the
    edit with an untyped error, while OPA (Go) reads it as U+FFFD: OPA served the edit and
    its data never matched what was published, so the engine flapped not ready and logged
    `opa_policy_tampered` at every whole comparison. One file, two values: refused instead.

    Raises: PolicyLoadError naming the file.
    """
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PolicyLoadError(
            f"{name}: a string holds a lone surrogate escape (\\ud800-\\udfff without its "
            "pair), which OPA would read as U+FFFD"
        ) from exc
    except RecursionError as exc:  # decoded, but deeper than the encoder goes
        raise PolicyLoadError(f"{name}: nested too deep to encode") from exc


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(f"{path.name}: cannot read: {exc}") from exc


def _merge(into: dict[str, Any], new: dict[str, Any], name: str, trail: tuple[str, ...]) -> None:
    for key, value in new.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge(into[key], value, name, (*trail, key))
        else:
            where = ".".join((*trail, key))
            raise PolicyLoadError(f"{name}: data.{where} is already defined by another data file")
