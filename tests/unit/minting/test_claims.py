"""Claim building per profile (docs/architecture.md §4): aud, act nesting, scope, resource,
authentication claims copied only when present, tenant, policy extras."""

from dataclasses import replace
from typing import Any

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.minting.claims import (
    RESERVED_CLAIMS,
    TokenFacts,
    build_claims,
    token_audience,
)
from sekisho.models import VerifiedToken

AS = "https://crm-as.example.com"
CRM = "https://crm.example.com/mcp"
CRM_API = "https://crm.example.com/api"

FACTS = TokenFacts(
    issuer="https://sekisho.example.com",
    profile=TOKEN_TYPE_ID_JAG,
    audience=AS,
    resources=(),
    scopes=(),
    client_id="crm-client",
    jti="jti-1",
    issued_at=1_800_000_000,
    expires_at=1_800_000_300,
    act=None,
    extra={},
)
SUBJECT = VerifiedToken(
    issuer="https://idp.example.com",
    subject="alice",
    token_type="urn:ietf:params:oauth:token-type:id_token",
    expires_at=1_800_000_600,
)


def _claims(
    facts: dict[str, Any] | None = None, subject: dict[str, Any] | None = None
) -> dict[str, Any]:
    return build_claims(replace(FACTS, **(facts or {})), replace(SUBJECT, **(subject or {})))


def test_minimal_claims() -> None:
    assert _claims() == {
        "iss": "https://sekisho.example.com",
        "sub": "alice",
        "aud": AS,
        "client_id": "crm-client",
        "jti": "jti-1",
        "iat": 1_800_000_000,
        "exp": 1_800_000_300,
    }


# --- act (RFC 8693 §4.1): the chain is built by delegation.actor_chain and copied as is -------

INBOUND_ACT = {"sub": "gateway", "iss": "https://idp.example.com"}


@pytest.mark.parametrize(
    ("act", "expected"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param({"sub": "agent"}, {"sub": "agent"}, id="one-actor"),
        pytest.param(
            {"sub": "agent", "act": INBOUND_ACT}, {"sub": "agent", "act": INBOUND_ACT}, id="chain"
        ),
    ],
)
def test_act_in_built_claims(act: dict[str, Any] | None, expected: object) -> None:
    claims = _claims({"act": act})
    assert claims.get("act") == expected


# --- aud per profile ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "resources", "expected"),
    [
        pytest.param(TOKEN_TYPE_ID_JAG, (), AS, id="id-jag-no-resource"),
        pytest.param(TOKEN_TYPE_ID_JAG, (CRM,), AS, id="id-jag-one-resource"),
        pytest.param(TOKEN_TYPE_ID_JAG, (CRM, CRM_API), AS, id="id-jag-two-resources"),
        pytest.param(TOKEN_TYPE_ACCESS_TOKEN, (), AS, id="access-token-no-resource"),
        pytest.param(TOKEN_TYPE_ACCESS_TOKEN, (CRM,), CRM, id="access-token-one-resource"),
        pytest.param(
            TOKEN_TYPE_ACCESS_TOKEN, (CRM, CRM_API), [CRM, CRM_API], id="access-token-two-resources"
        ),
    ],
)
def test_audience_per_profile(profile: str, resources: tuple[str, ...], expected: object) -> None:
    facts = replace(FACTS, profile=profile, resources=resources)
    assert token_audience(facts) == expected
    assert build_claims(facts, SUBJECT)["aud"] == expected


def test_id_jag_audience_is_always_one_string() -> None:
    # draft-ietf-oauth-identity-assertion-authz-grant: an aud array would allow audience
    # injection at the second leg.
    for resources in [(), (CRM,), (CRM, CRM_API)]:
        assert isinstance(_claims({"resources": resources})["aud"], str)


# --- scope and resource --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        pytest.param((), None, id="absent-when-none"),
        pytest.param(("crm.read",), "crm.read", id="one"),
        pytest.param(
            ("crm.read", "crm.write", "openid"), "crm.read crm.write openid", id="several"
        ),
    ],
)
def test_scope_is_space_joined(scopes: tuple[str, ...], expected: str | None) -> None:
    assert _claims({"scopes": scopes}).get("scope") == expected


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param((), None, id="absent-when-none"),
        pytest.param((CRM,), CRM, id="one-is-a-string"),
        pytest.param((CRM, CRM_API), [CRM, CRM_API], id="several-are-a-list"),
    ],
)
@pytest.mark.parametrize("profile", [TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ACCESS_TOKEN])
def test_resource_string_or_list(
    profile: str, resources: tuple[str, ...], expected: object
) -> None:
    assert _claims({"profile": profile, "resources": resources}).get("resource") == expected


# --- claims copied from the subject token --------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        pytest.param({}, {}, id="none-present"),
        pytest.param({"auth_time": 1_799_999_000}, {"auth_time": 1_799_999_000}, id="auth_time"),
        pytest.param(
            {"acr": "urn:mace:incommon:iap:silver"},
            {"acr": "urn:mace:incommon:iap:silver"},
            id="acr",
        ),
        pytest.param({"amr": ("pwd", "otp")}, {"amr": ["pwd", "otp"]}, id="amr-as-list"),
        pytest.param(
            {"auth_time": 1_799_999_000, "acr": "phr", "amr": ("hwk",)},
            {"auth_time": 1_799_999_000, "acr": "phr", "amr": ["hwk"]},
            id="all-three",
        ),
        pytest.param({"tenant": "acme"}, {"tenant": "acme"}, id="tenant"),
    ],
)
def test_authentication_claims_and_tenant_copied_only_when_present(
    subject: dict[str, Any], expected: dict[str, Any]
) -> None:
    claims = _claims(subject=subject)
    copied = {k: claims[k] for k in ("auth_time", "acr", "amr", "tenant") if k in claims}
    assert copied == expected


def test_other_subject_claims_are_not_copied() -> None:
    subject = {"email": "alice@example.com", "groups": ("sales",), "claims": {"name": "Alice"}}
    assert set(_claims(subject=subject)) == set(_claims())


def test_client_id_is_the_facts_client_id_not_the_subjects() -> None:
    assert (
        _claims({"client_id": "crm-client"}, {"client_id": "agent-app"})["client_id"]
        == "crm-client"
    )


def test_policy_extra_claims_are_added() -> None:
    claims = _claims({"extra": {"department": "sales", "crm_roles": ["viewer"]}})
    assert (claims["department"], claims["crm_roles"]) == ("sales", ["viewer"])


def test_every_claim_sekisho_emits_is_reserved() -> None:
    # Policy extras go through RESERVED_CLAIMS: any claim build_claims sets must be in it, or a
    # policy could override it.
    facts = replace(FACTS, resources=(CRM,), scopes=("crm.read",), act={"sub": "agent"})
    subject = replace(
        SUBJECT, auth_time=1, acr="phr", amr=("pwd",), tenant="acme", act={"sub": "gateway"}
    )
    emitted = set(build_claims(facts, subject))
    assert emitted == {
        "iss", "sub", "aud", "client_id", "jti", "iat", "exp", "scope", "resource",
        "auth_time", "acr", "amr", "tenant", "act",
    }  # fmt: skip
    assert emitted <= RESERVED_CLAIMS
