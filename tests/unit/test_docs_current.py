"""docs/ keep step with config/example.toml: every setting the example documents (it holds
exactly the model's keys, tests/unit/test_example_config.py) is named in the guides, in a table
row of operators.md or in backticks elsewhere in docs/. Statements of absence are checked by
tests/unit/test_docs_in_step.py."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel
from sekisho.config import Settings
from sekisho.identity.issuer_config import IssuerConfig

REPO = Path(__file__).resolve().parents[2]


def _documented_keys() -> set[str]:
    """Every `key` in backticks in docs/*.md (`section.key` spellings included)."""
    keys: set[str] = set()
    for path in (REPO / "docs").glob("*.md"):
        names = re.findall(r"`([a-z_0-9.]+)(?: = [^`]*)?`", path.read_text(encoding="utf-8"))
        keys.update(name.rsplit(".", 1)[-1] for name in names)
    return keys


def _sections() -> list[tuple[str, type[BaseModel]]]:
    sections: list[tuple[str, type[BaseModel]]] = [("trust.issuers", IssuerConfig)]
    for name, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            sections.append((name, model))
    return sections


def _settings_of(model: type[BaseModel]) -> set[str]:
    """The model's own settings (arrays of tables such as [[gateway.routes]] are sections)."""
    return {
        name for name, field in model.model_fields.items() if "Config" not in str(field.annotation)
    }


@pytest.mark.parametrize(("section", "model"), _sections(), ids=[s for s, _ in _sections()])
def test_every_setting_is_in_the_operator_guide(section: str, model: type[BaseModel]) -> None:
    missing = sorted(_settings_of(model) - _documented_keys())
    assert not missing, f"docs/ never name [{section}] {missing}: add rows to docs/operators.md"


def test_the_check_sees_a_missing_row() -> None:
    assert "preset" in _documented_keys()  # a row this issue added…
    assert "no_such_setting" not in _documented_keys()  # …and one nobody wrote


def _command_rows() -> list[str]:
    """The rows of operators.md's table of `sekisho` commands."""
    text = (REPO / "docs" / "operators.md").read_text(encoding="utf-8")
    section = text.split("## The `sekisho` command", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| `sekisho ")]


def test_every_command_row_lists_config() -> None:
    """Every subcommand takes --config (docs/architecture contract; cli.build_parser gives it to
    each): the `dev-idp token` row left it out, read as "this one ignores the config"."""
    rows = _command_rows()
    assert len(rows) >= 15  # the table was found
    missing = [row.split(" | ", 1)[0] for row in rows if "`--config`" not in row]
    assert not missing, f"operators.md command rows without --config: {missing}"
