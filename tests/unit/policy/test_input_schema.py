"""policies/schemas/input.json describes the input document Sekisho builds
(docs/architecture.md §5).

The Python side validates documents with jsonschema; the Rego side type-checks the policy's
`input.…` references against the same schema (`opa check --schema`) and validates every corpus
input with json.match_schema (policies/tests/corpus_test.rego).
"""

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sekisho.constants import TOKEN_TYPE_JWT
from sekisho.models import VerifiedToken
from sekisho.policy.selftest import self_test_input

from tests.opa import opa_binary
from tests.unit.policy.inputs import CRM, CRM_MCP, DOCS, POLICIES, REPO, policy_input

SCHEMA_PATH = POLICIES / "schemas" / "input.json"
ACTOR = VerifiedToken(
    issuer="https://workloads.example.com",
    subject="agent-7",
    token_type=TOKEN_TYPE_JWT,
    expires_at=0,
    claims={"role": "planner"},
)


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


BUILT = {
    "minimal": policy_input(CRM),
    "everything": policy_input(
        CRM,
        groups=["sales"],
        scopes=["crm.read"],
        resources=[CRM_MCP],
        tenant="acme",
        claims={"email": "a@example.com", "nested": {"x": [1, 2]}},
        caller_id="agent-runtime",
        authenticated_by="mtls",
        actor=ACTOR,
        context={"tool": "search", "depth": 2},
    ),
    "docs-tenant": policy_input(DOCS, tenant="acme", groups=["engineering"]),
    "self-test": self_test_input(),
    "docs-example": json.loads((REPO / "docs" / "examples" / "exchange-input.json").read_text()),
}


@pytest.mark.parametrize("document", BUILT.values(), ids=BUILT.keys())
def test_documents_sekisho_builds_match_the_schema(
    validator: jsonschema.protocols.Validator, document: dict[str, Any]
) -> None:
    validator.validate(document)


def _mutate(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(BUILT["everything"])
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return document


BROKEN = {
    "now-as-string": _mutate(("now",), "1700000000"),
    "now-negative": _mutate(("now",), -1),
    "groups-as-string": _mutate(("subject", "groups"), "sales"),
    "group-not-string": _mutate(("subject", "groups"), [1]),
    "unknown-top-level-key": _mutate(("extra",), {}),
    "unknown-request-key": _mutate(("request", "scope"), ["crm.read"]),
    "missing-subject-iss": _mutate(("subject", "iss"), KeyError),
    "missing-caller": _mutate(("caller",), KeyError),
    "authenticated-by-unknown": _mutate(("caller", "authenticated_by"), "password"),
    "actor-as-string": _mutate(("actor",), "agent-7"),
    "actor-without-sub": _mutate(("actor", "sub"), KeyError),
    "auth-time-float": _mutate(("subject", "auth_time"), 1.5),
    "lifetime-as-string": _mutate(("request", "lifetime_seconds"), "60"),
    "claims-as-list": _mutate(("subject", "claims"), []),
}


@pytest.mark.parametrize("document", BROKEN.values(), ids=BROKEN.keys())
def test_schema_rejects_ill_formed_documents(
    validator: jsonschema.protocols.Validator, document: dict[str, Any]
) -> None:
    assert not validator.is_valid(document)


def test_schema_requires_every_field_the_input_builder_sets(
    validator: jsonschema.protocols.Validator,
) -> None:
    # Keeps the schema and input.py in step: every key Sekisho sends is described and required.
    schema = json.loads(SCHEMA_PATH.read_text())
    document = BUILT["everything"]
    assert set(schema["required"]) == set(document)
    for section in ("subject", "caller", "request"):
        properties = schema["properties"][section]
        assert set(properties["required"]) == set(document[section]), section
        assert set(properties["properties"]) == set(document[section]), section


def test_opa_type_checks_policy_input_references_against_the_schema(tmp_path: Path) -> None:
    root = tmp_path / "policies"
    shutil.copytree(POLICIES, root)
    access = root / "sekisho" / "exchange" / "access.rego"
    access.write_text(access.read_text().replace("input.subject.tenant", "input.subject.tennant"))
    args = [
        str(opa_binary()),
        "check",
        "--strict",
        "--schema",
        str(root / "schemas" / "input.json"),
    ]
    typo = subprocess.run(
        [*args, str(root / "sekisho")], capture_output=True, text=True, check=False
    )
    assert typo.returncode != 0
    assert "undefined ref: input.subject.tennant" in typo.stdout + typo.stderr
    shipped = subprocess.run(
        [*args, str(POLICIES / "sekisho"), str(POLICIES / "data")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
