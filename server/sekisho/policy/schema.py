"""The policy input contract (docs/architecture.md section 5) as JSON Schema, applied to a document.

`<policy folder>/schemas/input.json` is the schema `opa check --schema` type-checks the policies
against; `sekisho policy eval` holds its --input to the same schema, so a corpus case file or a
typo is reported as such instead of evaluating to a default deny.
"""

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path("schemas") / "input.json"


def input_problems(document: Mapping[str, Any], policy_folder: Path) -> list[str]:
    """What is wrong with `document` as a policy input, one line per problem ([] = valid, or
    the policy folder has no schemas/input.json: a folder of .rego files only is allowed).

    Raises:
        ValueError: schemas/input.json exists but is not readable JSON.
    """
    path = policy_folder / SCHEMA_PATH
    if not path.exists():
        return []
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the input schema ({exc})") from exc
    # Imported here: only `sekisho policy eval` checks inputs, and jsonschema (with attrs,
    # referencing, rpds) costs `sekisho serve` ~50 ms of start-up it would never use.
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]  # no stubs

    validator = validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(dict(document)), key=lambda e: list(e.absolute_path))
    return [f"{_where(error.absolute_path)}: {error.message}" for error in errors]


def _where(path: Any) -> str:
    return "input." + ".".join(str(part) for part in path) if path else "input"
