"""Reading a policy directory: modules, excluded tests, data merged at the root of `data`."""

import json
from pathlib import Path
from typing import Any

import pytest
from sekisho.errors import PolicyLoadError
from sekisho.policy.source import load_source

from tests.unit.policy.inputs import POLICIES

MODULE = "package sekisho.exchange\n\nimport rego.v1\n\ndefault decision := {'allow': false}\n"


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_json(root: Path, relative: str, document: Any) -> None:
    write(root, relative, json.dumps(document))


def test_only_rego_directory_loads_with_empty_data(tmp_path: Path) -> None:
    write(tmp_path, "sekisho/exchange/decision.rego", MODULE)
    source = load_source(tmp_path)
    assert source.modules == {"sekisho/exchange/decision.rego": MODULE}
    assert source.data == {}


def test_modules_are_keyed_by_relative_path(tmp_path: Path) -> None:
    write(tmp_path, "a.rego", "package a\n")
    write(tmp_path, "deep/er/b.rego", "package deep.er.b\n")
    assert set(load_source(tmp_path).modules) == {"a.rego", "deep/er/b.rego"}


def test_test_modules_are_excluded(tmp_path: Path) -> None:
    write(tmp_path, "sekisho/exchange/decision.rego", MODULE)
    write(tmp_path, "sekisho/exchange/decision_test.rego", "package sekisho.exchange_test\n")
    write(tmp_path, "other_test.rego", "this would not even parse")
    assert list(load_source(tmp_path).modules) == ["sekisho/exchange/decision.rego"]


def test_directory_with_only_test_modules_is_rejected(tmp_path: Path) -> None:
    write(tmp_path, "decision_test.rego", "package sekisho.exchange_test\n")
    with pytest.raises(PolicyLoadError, match=r"no \.rego modules"):
        load_source(tmp_path)


@pytest.mark.parametrize("name", ["missing", "file.rego"])
def test_missing_directory_is_rejected(tmp_path: Path, name: str) -> None:
    write(tmp_path, "file.rego", MODULE)
    with pytest.raises(PolicyLoadError, match="not a directory"):
        load_source(tmp_path / name)


def test_data_files_merge_at_the_data_root(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", MODULE)
    write_json(tmp_path, "data/a.json", {"sekisho": {"registry": {"downstreams": {"x": 1}}}})
    write_json(tmp_path, "data/b.json", {"sekisho": {"limits": {"max": 2}}, "other": [1]})
    assert load_source(tmp_path).data == {
        "sekisho": {"registry": {"downstreams": {"x": 1}}, "limits": {"max": 2}},
        "other": [1],
    }


def test_only_json_in_the_data_folder_is_data(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", MODULE)
    write_json(tmp_path, "data/a.json", {"a": 1})
    write(tmp_path, "data/notes.txt", "not data")
    write_json(tmp_path, "elsewhere.json", {"b": 2})
    assert load_source(tmp_path).data == {"a": 1}


@pytest.mark.parametrize(
    ("first", "second", "where"),
    [
        pytest.param({"a": 1}, {"a": 1}, "data.a", id="same-scalar"),
        pytest.param({"a": {"b": 1}}, {"a": {"b": 2}}, "data.a.b", id="nested-scalar"),
        pytest.param({"a": {"b": {}}}, {"a": {"b": [1]}}, "data.a.b", id="object-vs-array"),
        pytest.param({"a": [1]}, {"a": {"b": 1}}, "data.a", id="array-vs-object"),
    ],
)
def test_data_conflict_names_the_file_and_path(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any], where: str
) -> None:
    write(tmp_path, "p.rego", MODULE)
    write_json(tmp_path, "data/first.json", first)
    write_json(tmp_path, "data/second.json", second)
    with pytest.raises(PolicyLoadError) as caught:
        load_source(tmp_path)
    message = str(caught.value)
    assert message.startswith("second.json:")
    assert f"{where} is already defined" in message


@pytest.mark.parametrize(
    "document", [[], [{"a": 1}], "registry", 3, None, True], ids=lambda d: type(d).__name__
)
def test_non_object_data_is_rejected_naming_the_file(tmp_path: Path, document: Any) -> None:
    write(tmp_path, "p.rego", MODULE)
    write_json(tmp_path, "data/registry.json", document)
    with pytest.raises(PolicyLoadError, match=r"^registry\.json: .*JSON object"):
        load_source(tmp_path)


def test_invalid_json_is_rejected_naming_the_file(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", MODULE)
    write(tmp_path, "data/registry.json", '{"sekisho": ')
    with pytest.raises(PolicyLoadError, match=r"^registry\.json: invalid JSON"):
        load_source(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"note": "a\\ud800b"}', id="high-half"),
        pytest.param('{"note": "\\uDC00"}', id="low-half-upper-case-hex"),
        pytest.param('{"a": {"\\ud83d": 1}}', id="in-a-key"),
        pytest.param('{"a": ["\\ude00\\ud83d"]}', id="pair-in-the-wrong-order"),
    ],
)
def test_a_data_file_with_a_lone_surrogate_is_rejected_naming_the_file(
    tmp_path: Path, text: str
) -> None:
    # Valid JSON; OPA reads it as U+FFFD, Python keeps the half pair (red team session 11).
    write(tmp_path, "p.rego", MODULE)
    write(tmp_path, "data/registry.json", text)
    with pytest.raises(PolicyLoadError, match=r"^registry\.json: .*lone surrogate"):
        load_source(tmp_path)


def test_a_data_file_with_a_surrogate_pair_escape_loads(tmp_path: Path) -> None:
    write(tmp_path, "p.rego", MODULE)
    write(tmp_path, "data/registry.json", '{"note": "\\ud83d\\ude00"}')
    assert load_source(tmp_path).data == {"note": "\U0001f600"}


def test_unreadable_module_is_rejected_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "latin1.rego").write_bytes(b"package p\n# caf\xe9\n")
    with pytest.raises(PolicyLoadError, match=r"^latin1\.rego: cannot read"):
        load_source(tmp_path)


def test_shipped_policies_load() -> None:
    source = load_source(POLICIES)
    assert list(source.modules) == [
        "sekisho/exchange/access.rego",
        "sekisho/exchange/decision.rego",
        "sekisho/exchange/delegation.rego",
        "sekisho/exchange/resources.rego",
        "sekisho/exchange/scopes.rego",
    ]  # no *_test.rego, nothing from tests/ (the corpus) or schemas/
    assert "https://crm-as.example.com" in source.data["sekisho"]["registry"]["downstreams"]
    assert set(source.data["sekisho"]) == {"registry", "denylist", "consents"}
    assert "cases" not in source.data
