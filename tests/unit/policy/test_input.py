"""The policy input document matches the docs/architecture.md §5 contract key for key."""

import json
from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT
from sekisho.models import Caller, ExchangeRequest, VerifiedToken
from sekisho.policy.input import build_input

# docs/architecture.md §5, the input document (contract).
CONTRACT_KEYS: dict[str, set[str] | None] = {
    "subject": {
        "iss",
        "sub",
        "client_id",
        "tenant",
        "email",
        "groups",
        "acr",
        "amr",
        "auth_time",
        "claims",
    },
    "actor": {"sub", "iss", "claims"},
    "caller": {"id", "spiffe_id", "authenticated_by"},
    "request": {
        "audience",
        "resources",
        "scopes",
        "requested_token_type",
        "subject_token_type",
        "lifetime_seconds",
        "context",
    },
    "now": None,
}

REQUEST = ExchangeRequest(
    subject_token="eyJ.subject.token",
    subject_token_type=TOKEN_TYPE_ID_TOKEN,
    requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    audience="https://crm-as.example.com",
    resources=("https://crm.example.com/mcp",),
    scopes=("crm.read", "crm.write"),
    actor_token="eyJ.actor.token",
    actor_token_type=TOKEN_TYPE_JWT,
    context={"tool": "search_deals", "session": {"id": "s-1"}},
    requested_lifetime_seconds=120,
    caller=Caller(id="agent-runtime", spiffe_id="spiffe://acme/agent", authenticated_by="mtls"),
)

SUBJECT = VerifiedToken(
    issuer="https://idp.example.com",
    subject="alice",
    token_type=TOKEN_TYPE_ID_TOKEN,
    expires_at=1_700_000_600,
    client_id="agent-app",
    tenant="acme",
    email="alice@example.com",
    groups=("sales", "sales-admin"),
    acr="phr",
    amr=("pwd", "otp"),
    auth_time=1_699_999_000,
    act={"sub": "upstream-agent"},
    claims={"email": "alice@example.com", "name": "Alice"},
)

ACTOR = VerifiedToken(
    issuer="https://workloads.example.com",
    subject="agent-7",
    token_type=TOKEN_TYPE_JWT,
    expires_at=1_700_000_600,
    client_id="should-not-appear",
    groups=("should-not-appear",),
    claims={"sub": "agent-7", "role": "planner"},
)


def test_document_matches_contract_exactly() -> None:
    assert build_input(REQUEST, SUBJECT, ACTOR, 1_700_000_000.9) == {
        "subject": {
            "iss": "https://idp.example.com",
            "sub": "alice",
            "client_id": "agent-app",
            "tenant": "acme",
            "email": "alice@example.com",
            "groups": ["sales", "sales-admin"],
            "acr": "phr",
            "amr": ["pwd", "otp"],
            "auth_time": 1_699_999_000,
            "claims": {"email": "alice@example.com", "name": "Alice"},
        },
        "actor": {
            "sub": "agent-7",
            "iss": "https://workloads.example.com",
            "claims": {"sub": "agent-7", "role": "planner"},
        },
        "caller": {
            "id": "agent-runtime",
            "spiffe_id": "spiffe://acme/agent",
            "authenticated_by": "mtls",
        },
        "request": {
            "audience": "https://crm-as.example.com",
            "resources": ["https://crm.example.com/mcp"],
            "scopes": ["crm.read", "crm.write"],
            "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN,
            "subject_token_type": TOKEN_TYPE_ID_TOKEN,
            "lifetime_seconds": 120,
            "context": {"tool": "search_deals", "session": {"id": "s-1"}},
        },
        "now": 1_700_000_000,
    }


@pytest.mark.parametrize("actor", [ACTOR, None], ids=["with-actor", "without-actor"])
def test_key_sets_are_the_contract(actor: VerifiedToken | None) -> None:
    document = build_input(REQUEST, SUBJECT, actor, 0)
    assert document.keys() == CONTRACT_KEYS.keys()
    for section, keys in CONTRACT_KEYS.items():
        if keys is not None and document[section] is not None:
            assert document[section].keys() == keys, section


def test_actor_is_null_without_actor_token() -> None:
    assert build_input(REQUEST, SUBJECT, None, 0)["actor"] is None


def test_actor_carries_only_sub_iss_claims() -> None:
    assert build_input(REQUEST, SUBJECT, ACTOR, 0)["actor"] == {
        "sub": "agent-7",
        "iss": "https://workloads.example.com",
        "claims": {"sub": "agent-7", "role": "planner"},
    }


def test_now_is_whole_seconds() -> None:
    now = build_input(REQUEST, SUBJECT, None, 1_700_000_000.999)["now"]
    assert now == 1_700_000_000
    assert type(now) is int


def test_tokens_never_reach_policy() -> None:
    text = json.dumps(build_input(REQUEST, SUBJECT, ACTOR, 0))
    assert "eyJ" not in text


def test_defaults_give_empty_values_of_the_contract_types() -> None:
    request = ExchangeRequest(
        subject_token="t",
        subject_token_type=TOKEN_TYPE_ID_TOKEN,
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        audience="https://crm-as.example.com",
    )
    subject = VerifiedToken(
        issuer="https://idp.example.com", subject="bob", token_type="", expires_at=0
    )
    document = build_input(request, subject, None, 0)
    assert document["subject"]["groups"] == []
    assert document["subject"]["amr"] == []
    assert document["subject"]["claims"] == {}
    assert document["subject"]["auth_time"] == 0
    assert document["caller"] == {"id": "", "spiffe_id": "", "authenticated_by": "none"}
    assert document["request"]["resources"] == []
    assert document["request"]["scopes"] == []
    assert document["request"]["context"] == {}
    assert document["request"]["lifetime_seconds"] == 0


@pytest.mark.parametrize("actor", [ACTOR, None], ids=["with-actor", "without-actor"])
def test_document_is_plain_json(actor: VerifiedToken | None) -> None:
    # Tuples or mapping proxies would change on a JSON round trip; engines see JSON only.
    document: dict[str, Any] = build_input(REQUEST, SUBJECT, actor, 0)
    assert json.loads(json.dumps(document)) == document


def test_document_does_not_alias_the_request() -> None:
    context: dict[str, Any] = {"tool": "search"}
    request = ExchangeRequest(
        subject_token="t",
        subject_token_type=TOKEN_TYPE_ID_TOKEN,
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        audience="https://crm-as.example.com",
        context=context,
    )
    document = build_input(request, SUBJECT, None, 0)
    document["request"]["context"]["tool"] = "changed"
    document["subject"]["claims"]["email"] = "changed"
    assert context == {"tool": "search"}
    assert SUBJECT.claims["email"] == "alice@example.com"
