"""The embedded engine and OPA give identical raw decisions on the shipped policies/ (§5)."""

import json
import subprocess
from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_JWT
from sekisho.models import VerifiedToken
from sekisho.policy.wasm.engine import WasmPolicyEngine

from tests.embedded import loaded_engine
from tests.opa import opa_binary
from tests.unit.policy.inputs import (
    CRM,
    CRM_MCP,
    DOCS,
    DOCS_MCP,
    DOCS_SEARCH,
    POLICIES,
    QUERY,
    UNKNOWN,
    policy_input,
)

ACTOR = VerifiedToken(
    issuer="https://workloads.example.com",
    subject="agent-7",
    token_type=TOKEN_TYPE_JWT,
    expires_at=0,
    claims={"role": "planner"},
)

DOCUMENTS: dict[str, dict[str, Any]] = {
    "crm-defaults": policy_input(CRM, groups=["sales"]),
    "crm-partial-grant-with-claims": policy_input(
        CRM,
        groups=["sales", "sales-admin"],
        scopes=["crm.write", "crm.read", "crm.delete"],
        resources=[CRM_MCP],
        claims={"email": "alice@example.com", "name": "Alice"},
        caller_id="agent-runtime",
        authenticated_by="mtls",
    ),
    "crm-with-actor-and-context": policy_input(
        CRM, groups=["sales-admin"], actor=ACTOR, context={"tool": "deals"}
    ),
    "docs-all-grantable": policy_input(
        DOCS, tenant="acme", groups=["engineering"], claims={"email": "a@x.com"}
    ),
    "docs-requested-resources": policy_input(
        DOCS, tenant="acme", groups=["sales"], resources=[DOCS_SEARCH, DOCS_MCP]
    ),
    "docs-other-tenant": policy_input(DOCS, tenant="globex", groups=["engineering"]),
    "docs-no-tenant": policy_input(DOCS, groups=["engineering"]),
    "unknown-audience": policy_input(UNKNOWN, groups=["sales"]),
    "no-grant": policy_input(CRM, groups=["marketing"]),
    "invalid-target": policy_input(
        CRM, groups=["sales"], resources=["https://crm.example.com/admin"]
    ),
    "invalid-scope": policy_input(CRM, groups=["sales"], scopes=["crm.write"]),
}


def opa_eval(document: dict[str, Any]) -> Any:
    """The value OPA gives for the query, or None when undefined."""
    completed = subprocess.run(
        [
            str(opa_binary()),
            "eval",
            "-f",
            "json",
            "-d",
            str(POLICIES / "sekisho"),
            "-d",
            str(POLICIES / "data"),
            "--stdin-input",
            QUERY,
        ],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    results = json.loads(completed.stdout).get("result", [])
    return results[0]["expressions"][0]["value"] if results else None


@pytest.fixture(scope="module")
def embedded() -> WasmPolicyEngine:
    return loaded_engine(POLICIES, QUERY)


@pytest.mark.parametrize("document", DOCUMENTS.values(), ids=DOCUMENTS.keys())
def test_embedded_engine_matches_opa(embedded: WasmPolicyEngine, document: dict[str, Any]) -> None:
    expected = opa_eval(document)
    assert expected is not None
    assert embedded.evaluate_raw(document) == expected


def test_cases_cover_every_outcome(embedded: WasmPolicyEngine) -> None:
    # Guards the corpus itself: parity on denials alone would prove little.
    outcomes = {
        (raw["allow"], raw.get("error", ""))
        for raw in map(embedded.evaluate_raw, DOCUMENTS.values())
    }
    assert outcomes == {
        (True, ""),
        (False, "access_denied"),
        (False, "invalid_target"),
        (False, "invalid_scope"),
    }
