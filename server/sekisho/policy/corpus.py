"""The shared decision corpus: `tests/cases/*.json` under the policy folder, one case per file.

A file holds one object, `{"<name>": case}`, whose only key is the file's name without `.json`:
OPA loads every JSON file of a folder into the same document (`data.cases`), so the name keeps
cases apart there. A case has `description`, `features` (tags), `input` (an input document),
optional `data` and `expected` (the exact decision). `data` is merged into the folder's data the
way OPA's object.union merges (objects key by key, anything else replaces) and may only touch
`data.sekisho.{registry,denylist,consents}`: policies/tests/corpus_test.rego applies the same
patch with `with` under `opa test`. The engine's own data loader never reads this folder.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sekisho.policy.source import PolicySource

# The data documents a case may patch (mirrors policies/tests/corpus_test.rego).
PATCHABLE = ("registry", "denylist", "consents")


class CorpusError(ValueError):
    """A case file is malformed; the message names it."""


@dataclass(frozen=True, slots=True)
class DecisionCase:
    """One input and the decision the default policy must give for it."""

    name: str
    description: str
    features: tuple[str, ...]
    input: dict[str, Any]
    data: dict[str, Any]
    expected: dict[str, Any]


def cases_dir(root: Path) -> Path:
    return root / "tests" / "cases"


def load_cases(root: Path) -> list[DecisionCase]:
    """Every case under `root`/tests/cases, by name. Raises: CorpusError."""
    return [_load_case(path) for path in sorted(cases_dir(root).glob("*.json"))]


def _load_case(path: Path) -> DecisionCase:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CorpusError(f"{path.name}: cannot read: {exc}") from exc
    if not isinstance(document, dict) or list(document) != [path.stem]:
        raise CorpusError(f'{path.name}: must hold one object, {{"{path.stem}": {{…}}}}')
    body = document[path.stem]
    if not isinstance(body, dict):
        raise CorpusError(f"{path.name}: the case must be an object")
    for key, kind in (("input", dict), ("expected", dict), ("description", str)):
        if not isinstance(body.get(key), kind):
            raise CorpusError(f"{path.name}: '{key}' is missing or not a {kind.__name__}")
    unknown = set(body) - {"description", "features", "input", "data", "expected"}
    if unknown:
        raise CorpusError(f"{path.name}: unknown keys {sorted(unknown)}")
    features = body.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise CorpusError(f"{path.name}: 'features' must be an array of strings")
    data = body.get("data", {})
    _check_patch(path.name, data)
    return DecisionCase(
        name=path.stem,
        description=body["description"],
        features=tuple(features),
        input=body["input"],
        data=data,
        expected=body["expected"],
    )


def _check_patch(name: str, data: Any) -> None:
    if data == {}:
        return
    sekisho = data.get("sekisho") if isinstance(data, dict) else None
    if list(data) != ["sekisho"] or not isinstance(sekisho, dict):
        raise CorpusError(f"{name}: 'data' may only hold {{\"sekisho\": {{…}}}}")
    for key, value in sekisho.items():
        if key not in PATCHABLE or not isinstance(value, dict):
            raise CorpusError(f"{name}: 'data' may patch only sekisho.{{{','.join(PATCHABLE)}}}")


def merged(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`base` with `patch` applied as OPA's object.union does: objects merge, the rest replaces."""
    result = dict(base)
    for key, value in patch.items():
        if isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = merged(result[key], value)
        else:
            result[key] = value
    return result


def case_source(source: PolicySource, case: DecisionCase) -> PolicySource:
    """The policy folder's modules with the case's data patch applied."""
    return PolicySource(modules=source.modules, data=merged(source.data, case.data))


def data_key(case: DecisionCase) -> str:
    """Cases with the same key share one compiled policy (or one OPA publish)."""
    return json.dumps(case.data, sort_keys=True)
