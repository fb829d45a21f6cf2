"""The shipped policy and the minter agree on the claims a policy may not set (policy vs
minting): resources.rego's `reserved_claims` keeps them out of `claims` ("listing one in
propagate_claims is a no-op"), and the minter refuses any grant whose claims carry one
(minting/minter.py, fail closed). A name only the minter reserves turns a downstream that lists
it, and a user token that has it, into a refusal of every such exchange."""

import json
import subprocess
from pathlib import Path
from typing import Any

from sekisho.minting.claims import RESERVED_CLAIMS
from sekisho.policy.decision import parse_decision

from tests.opa import opa_binary
from tests.unit.policy.inputs import POLICIES, QUERY, policy_input

AUDIENCE = "https://claims-as.example.com"


def _opa_eval(query: str, *data: Path, document: dict[str, Any] | None = None) -> Any:
    command = [str(opa_binary()), "eval", "--format", "json"]
    for path in data:
        command += ["--data", str(path)]
    if document is not None:
        command += ["--stdin-input"]
    done = subprocess.run(
        [*command, query],
        input=json.dumps(document) if document is not None else None,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)["result"][0]["expressions"][0]["value"]


def test_the_policy_reserves_exactly_the_minters_claims() -> None:
    reserved = _opa_eval("data.sekisho.exchange.reserved_claims", POLICIES / "sekisho")
    assert set(reserved) == set(RESERVED_CLAIMS)


def test_a_reserved_claim_in_propagate_claims_is_left_out_and_the_grant_stands(
    tmp_path: Path,
) -> None:
    registry = {
        "decision_cache_seconds": 0,
        "risk_levels": {},
        "tenants": {},
        "downstreams": {
            AUDIENCE: {
                "scopes": {"claims.read": {}},
                "group_grants": {"staff": ["claims.read"]},
                "propagate_claims": [*sorted(RESERVED_CLAIMS), "email"],
            }
        },
    }
    data = tmp_path / "data.json"
    data.write_text(json.dumps({"sekisho": {"registry": registry}}))
    claims = {name: f"user-{name}" for name in RESERVED_CLAIMS} | {"email": "alice@example.com"}
    document = policy_input(AUDIENCE, groups=["staff"], claims=claims)
    raw = _opa_eval(QUERY, POLICIES / "sekisho", data, document=document)
    decision = parse_decision(raw)
    assert decision.allow, raw
    assert decision.claims == {"email": "alice@example.com"}  # nothing the minter would refuse
