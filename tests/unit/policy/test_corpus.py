"""The shared decision corpus (policies/tests/cases/*.json): well-formed, covering every feature
of the default policy, and decided as expected by the embedded engine and by `opa test`.
The same cases run against a live OPA server in tests/integration/test_corpus_opa.py."""

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sekisho.policy.corpus import CorpusError, DecisionCase, load_cases, merged
from sekisho.policy.decision import parse_decision
from sekisho.policy.replay import CaseResult, replay_embedded
from sekisho.policy.source import load_source
from sekisho.policy.toolchain import PolicyFolder

from tests.embedded import loaded_engine
from tests.opa import opa_binary
from tests.unit.policy.inputs import POLICIES, QUERY

CASES = load_cases(POLICIES)
BY_NAME = {case.name: case for case in CASES}

# Every feature of the default policy (docs/policy-authors.md) and the tag its cases carry.
FEATURES = {
    "deny_list_user",
    "deny_list_caller",
    "tenant_binding",
    "tenant_issuers",
    "multi_tenant",
    "tenant_scope_limit",
    "group_grants",
    "default_scopes",
    "scope_catalogue",
    "caller_restriction",
    "caller_client_id",
    "caller_scope_limit",
    "resource_binding",
    "require_resource",
    "risk_acr",
    "risk_max_age",
    "risk_rank",
    "consent",
    "consent_expiry",
    "ttl_downstream",
    "ttl_resource",
    "claims_downstream",
    "claims_resource",
    "claims_groups",
    "unknown_audience",
    "fail_closed_data",
    "data_override",
}


@pytest.fixture(scope="module")
def embedded() -> dict[str, CaseResult]:
    results = replay_embedded(CASES, load_source(POLICIES), loaded_engine(POLICIES, QUERY).policy)
    return {result.case.name: result for result in results}


def test_corpus_has_at_least_40_cases() -> None:
    assert len(CASES) >= 40


def test_every_feature_is_covered_and_no_tag_is_unknown() -> None:
    tags = {tag for case in CASES for tag in case.features}
    assert tags == FEATURES


def test_every_outcome_is_covered() -> None:
    outcomes = {(case.expected["allow"], case.expected.get("error", "")) for case in CASES}
    assert outcomes == {
        (True, ""),
        (False, "access_denied"),
        (False, "invalid_target"),
        (False, "invalid_scope"),
        (False, "insufficient_user_authentication"),
        (False, "consent_required"),
    }


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((POLICIES / "schemas" / "input.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


@pytest.mark.parametrize("case", CASES, ids=BY_NAME)
def test_case_is_well_formed(case: DecisionCase, validator: jsonschema.protocols.Validator) -> None:
    validator.validate(case.input)
    parse_decision(case.expected)  # the expected value fits the decision contract
    assert case.description and case.features


@pytest.mark.parametrize("name", BY_NAME)
def test_embedded_engine_gives_the_expected_decision(
    embedded: dict[str, CaseResult], name: str
) -> None:
    assert embedded[name].actual == BY_NAME[name].expected


def test_opa_test_runs_the_corpus_and_the_schema_checks() -> None:
    folder = PolicyFolder(POLICIES)
    completed = subprocess.run(
        [str(opa_binary()), "test", "-v", *folder.test_args()],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for test in (
        "test_every_case_gets_its_expected_decision",
        "test_every_case_input_matches_the_input_schema",
        "test_input_schema_rejects_ill_typed_inputs",
    ):
        assert f"data.corpus_test.{test}: PASS" in completed.stdout


def test_opa_test_fails_when_a_case_expects_another_decision(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    for part in ("sekisho", "data", "schemas", "tests"):
        _copy(POLICIES / part, root / part)
    case_file = root / "tests" / "cases" / "crm_sales_gets_default_scope.json"
    case = json.loads(case_file.read_text())
    case["crm_sales_gets_default_scope"]["expected"]["ttl_seconds"] = 299
    case_file.write_text(json.dumps(case))
    completed = subprocess.run(
        [str(opa_binary()), "test", *PolicyFolder(root).test_args()],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert completed.returncode != 0
    assert "crm_sales_gets_default_scope" in completed.stdout


def _copy(source: Path, target: Path) -> None:
    import shutil

    shutil.copytree(source, target)


# --- the corpus format ---------------------------------------------------------------------------


def _write_case(tmp_path: Path, name: str, body: Any) -> Path:
    folder = tmp_path / "tests" / "cases"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(body))
    return tmp_path


GOOD = {"description": "d", "features": ["x"], "input": {}, "expected": {"allow": False}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param({"other_name": GOOD}, "must hold one object", id="key-is-not-the-file-name"),
        pytest.param({"case": GOOD, "more": GOOD}, "must hold one object", id="two-cases"),
        pytest.param({"case": {**GOOD, "input": []}}, "'input'", id="input-not-object"),
        pytest.param({"case": {**GOOD, "expect": {}}}, "unknown keys", id="typo-key"),
        pytest.param({"case": {**GOOD, "features": "x"}}, "'features'", id="features-string"),
        pytest.param(
            {"case": {**GOOD, "data": {"registry": {}}}}, "may only hold", id="data-not-rooted"
        ),
        pytest.param(
            {"case": {**GOOD, "data": {"sekisho": {"exchange": {}}}}},
            "may patch only",
            id="data-patches-a-package",
        ),
    ],
)
def test_malformed_case_files_are_refused_by_name(tmp_path: Path, body: Any, message: str) -> None:
    root = _write_case(tmp_path, "case", body)
    with pytest.raises(CorpusError, match=message) as caught:
        load_cases(root)
    assert "case.json" in str(caught.value)


def test_data_patch_merges_like_opas_object_union() -> None:
    base = {"a": {"b": 1, "c": {"d": 2}}, "e": [1, 2]}
    patch = {"a": {"c": {"f": 3}}, "e": [3], "g": True}
    expected = subprocess.run(
        [
            str(opa_binary()),
            "eval",
            "-f",
            "json",
            f"object.union({json.dumps(base)}, {json.dumps(patch)})",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    value = json.loads(expected.stdout)["result"][0]["expressions"][0]["value"]
    assert (
        merged(base, patch) == value == {"a": {"b": 1, "c": {"d": 2, "f": 3}}, "e": [3], "g": True}
    )
