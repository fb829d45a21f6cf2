"""IdP presets (identity/presets.py, identity/kind.py): vendor-shaped tokens through the real verifier.

Every vendor's ID token must never pass as an access token, nor the reverse; the claim mappings
(client, groups/roles, tenant, scopes, issuer forms) must read what the vendor documents.
"""

from typing import Any

import pytest
from sekisho.config import Settings
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import InvalidTokenError
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.models import VerifiedToken
from sekisho.verify.jwks import JwksCache

from tests.bounds import max_act_depth
from tests.fakes.clock import FakeClock
from tests.fakes.fetcher import FakeFetcher
from tests.fakes.idp import TestIdp
from tests.harness import SEKISHO_ISSUER
from tests.unit.identity import vendor_tokens as v

ID, ACCESS = TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN
JWKS_URI = "https://keys.example.com/jwks"

# preset, issuer, trust settings, ID token shape, access token shape (None: vendor has none)
VENDORS: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any] | None]] = {
    "keycloak": (
        v.KEYCLOAK_ISSUER,
        {"audiences": ("agent-app",), "client_ids": ("agent-app",)},
        v.KEYCLOAK_ID,
        v.KEYCLOAK_ACCESS,
    ),
    "cognito": (
        v.COGNITO_ISSUER,
        {"audiences": ("1example23456789",), "client_ids": ("1example23456789",)},
        v.COGNITO_ID,
        v.COGNITO_ACCESS,
    ),
    "entra": (
        v.ENTRA_V2_ISSUER,
        {"audiences": ("6e74172b-be56-4843-9ff4-e66a39bb12e3",)},
        v.ENTRA_V2_ID,
        v.ENTRA_V2_ACCESS,
    ),
    "okta": (
        v.OKTA_ISSUER,
        {"audiences": ("0oah9pj6cgR7ZhIxj0g3", "api://default")},
        v.OKTA_ID,
        v.OKTA_ACCESS,
    ),
    "auth0": (
        v.AUTH0_ISSUER,
        {"audiences": ("my_client_id", "https://sekisho.example.com")},
        v.AUTH0_ID,
        v.AUTH0_ACCESS,
    ),
    "google": (
        v.GOOGLE_ISSUER,
        {"audiences": ("1234987819200.apps.googleusercontent.com",)},
        v.GOOGLE_ID,
        None,
    ),
}


class Vendor:
    """One preset-configured issuer behind a real verifier with the fixture IdP's keys."""

    def __init__(self, vendor: str, /, **overrides: Any) -> None:
        issuer, trust, self.id_shape, self.access_shape = VENDORS[vendor]
        self.idp = TestIdp(issuer)
        self.clock = FakeClock()
        fields = {"issuer": issuer, "jwks_uri": JWKS_URI, "preset": vendor, **trust, **overrides}
        self.config = IssuerConfig(**fields)
        cache = JwksCache(
            issuer, FakeFetcher({JWKS_URI: self.idp.jwks()}), self.clock, jwks_uri=JWKS_URI
        )
        self.verifier = TokenVerifier(
            {issuer: TrustedIssuer(config=self.config, jwks=cache)},
            self.clock,
            own_issuer=SEKISHO_ISSUER,
            leeway_seconds=30,
            max_token_bytes=16384,
            max_act_depth=max_act_depth(),
        )

    def token(self, shape: dict[str, Any], header: dict[str, Any] | None = None) -> str:
        return v.issue(self.idp, self.clock.now(), shape, header)

    async def verify(self, shape: dict[str, Any], token_type: str, **kw: Any) -> VerifiedToken:
        return await self.verifier.verify(self.token(shape, **kw), token_type)

    async def refused(self, shape: dict[str, Any], token_type: str, **kw: Any) -> str:
        with pytest.raises(InvalidTokenError) as caught:
            await self.verify(shape, token_type, **kw)
        return caught.value.public_message


@pytest.mark.parametrize("preset", VENDORS)
async def test_id_token_verifies_as_id_token(preset: str) -> None:
    vendor = Vendor(preset)
    assert (await vendor.verify(vendor.id_shape, ID)).token_type == ID


@pytest.mark.parametrize("preset", [name for name, row in VENDORS.items() if row[3] is not None])
async def test_access_token_verifies_as_access_token(preset: str) -> None:
    vendor = Vendor(preset)
    assert vendor.access_shape is not None
    assert (await vendor.verify(vendor.access_shape, ACCESS)).token_type == ACCESS


@pytest.mark.parametrize("preset", VENDORS)
async def test_id_token_never_passes_as_access_token(preset: str) -> None:
    vendor = Vendor(preset)
    message = await vendor.refused(vendor.id_shape, ACCESS)
    assert "is an ID token but was sent as an access token" in message
    assert f"subject_token_type (or actor_token_type) to {ID}" in message


@pytest.mark.parametrize("preset", [name for name, row in VENDORS.items() if row[3] is not None])
async def test_access_token_never_passes_as_id_token(preset: str) -> None:
    vendor = Vendor(preset)
    assert vendor.access_shape is not None
    message = await vendor.refused(vendor.access_shape, ID)
    assert "is an access token but was sent as an ID token: set subject_token_type" in message


async def test_kind_mismatch_message_never_echoes_the_token() -> None:
    vendor = Vendor("keycloak")
    token = vendor.token(v.KEYCLOAK_ACCESS)
    with pytest.raises(InvalidTokenError) as caught:
        await vendor.verifier.verify(token, ID)
    assert not any(part in caught.value.public_message for part in token.split("."))
    assert "alice" not in caught.value.public_message


# --- Keycloak pitfalls (issue 18) -------------------------------------------------------------


async def test_keycloak_full_group_paths_become_relative() -> None:
    verified = await Vendor("keycloak").verify(v.KEYCLOAK_ACCESS, ACCESS)
    assert verified.groups == ("sales", "eng/platform")
    assert verified.client_id == "agent-app"


async def test_keycloak_access_token_with_account_audience_needs_client_ids() -> None:
    vendor = Vendor("keycloak", client_ids=())
    message = await vendor.refused(v.KEYCLOAK_ACCESS, ACCESS)
    assert "trust.issuers audiences / client_ids" in message


def test_keycloak_account_audience_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="'account' in audiences accepts any client's token"):
        IssuerConfig(
            issuer=v.KEYCLOAK_ISSUER, jwks_uri=JWKS_URI, preset="keycloak", audiences=("account",)
        )


async def test_keycloak_refresh_token_is_no_kind_we_accept() -> None:
    vendor = Vendor("keycloak")
    assert "no keycloak token-kind signal" in await vendor.refused(
        {**v.KEYCLOAK_ACCESS, "typ": "Refresh"}, ACCESS
    )
    assert "no keycloak token-kind signal" in await vendor.refused(
        {**v.KEYCLOAK_ID, "typ": None}, ID
    )


async def test_kind_check_off_is_what_lets_an_id_token_through() -> None:
    # The defence above is the kind check itself: with it off, the ID token is accepted.
    vendor = Vendor("keycloak", check_token_kind=False)
    assert (await vendor.verify(v.KEYCLOAK_ID, ACCESS)).subject == v.KEYCLOAK_ID["sub"]


# --- Cognito ----------------------------------------------------------------------------------


async def test_cognito_access_token_without_aud_is_matched_by_client_id() -> None:
    verified = await Vendor("cognito", audiences=()).verify(v.COGNITO_ACCESS, ACCESS)
    assert verified.client_id == "1example23456789"
    assert verified.groups == ("admin",)


async def test_cognito_access_token_of_another_app_client_is_refused() -> None:
    vendor = Vendor("cognito")
    await vendor.refused({**v.COGNITO_ACCESS, "client_id": "other-app"}, ACCESS)


# --- Entra ------------------------------------------------------------------------------------


async def test_entra_v2_access_token_mapping() -> None:
    verified = await Vendor("entra").verify(v.ENTRA_V2_ACCESS, ACCESS)
    assert verified.tenant == v.ENTRA_TENANT
    assert verified.client_id == "6e74172b-be56-4843-9ff4-e66a39bb12e3"
    assert verified.groups == ("f3a1c8e2-0b7d-4c55-9d61-2b7e9a4c1d10", "Exchange.Reader")
    assert verified.issuer == v.ENTRA_V2_ISSUER


async def test_entra_v1_token_accepted_under_v2_issuer() -> None:
    # An API whose manifest leaves accessTokenAcceptedVersion unset gets v1.0 tokens.
    vendor = Vendor("entra", audiences=("api://6e74172b-be56-4843-9ff4-e66a39bb12e3",))
    verified = await vendor.verify(v.ENTRA_V1_ACCESS, ACCESS)
    assert verified.issuer == v.ENTRA_V2_ISSUER  # policy sees the configured issuer
    assert verified.client_id == "6e74172b-be56-4843-9ff4-e66a39bb12e3"  # from appid


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"ver": "1.0"}, id="v1-ver-from-v2-issuer"),
        pytest.param({"ver": None}, id="no-ver"),
        pytest.param({"tid": "00000000-0000-0000-0000-000000000000"}, id="foreign-tid"),
        pytest.param(v.ENTRA_OVERAGE, id="groups-overage"),
        pytest.param({"hasgroups": True, "groups": None}, id="implicit-flow-overage"),
    ],
)
async def test_entra_vendor_rules(changes: dict[str, Any]) -> None:
    vendor = Vendor("entra")
    assert (await vendor.verify(v.ENTRA_V2_ACCESS, ACCESS)).subject  # the unchanged shape passes
    await vendor.refused({**v.ENTRA_V2_ACCESS, **changes}, ACCESS)


@pytest.mark.parametrize(
    "issuer",
    [
        "https://login.microsoftonline.com/common/v2.0",
        "https://login.microsoftonline.com/organizations/v2.0",
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0",
    ],
)
def test_entra_needs_a_tenant_issuer(issuer: str) -> None:
    with pytest.raises(ValueError, match="preset 'entra' needs"):
        IssuerConfig(issuer=issuer, jwks_uri=JWKS_URI, preset="entra", audiences=("x",))


# --- Okta -------------------------------------------------------------------------------------


async def test_okta_scp_array_and_required_scopes() -> None:
    vendor = Vendor("okta", required_scopes=("sekisho",))
    verified = await vendor.verify(v.OKTA_ACCESS, ACCESS)
    assert verified.client_id == "0oah9pj6cgR7ZhIxj0g3"
    message = await vendor.refused({**v.OKTA_ACCESS, "scp": ["openid"]}, ACCESS)
    assert "trust.issuers required_scopes" in message


@pytest.mark.parametrize(
    "space",
    [
        pytest.param("\u00a0", id="no-break-space"),
        pytest.param("\u2003", id="em-space"),
        pytest.param("\u3000", id="ideographic-space"),
        pytest.param("\u1680", id="ogham-space-mark"),
    ],
)
async def test_a_required_scope_joined_by_a_unicode_space_is_not_carried(space: str) -> None:
    # RFC 6749 §3.3 / RFC 8693 §4.2: scope tokens are separated by SP (%x20) only, and a
    # scope-token holds no space at all. "openid<NBSP>sekisho" is one (malformed) token at the
    # IdP, not the two str.split() made of it: the required_scopes gate read "sekisho" in a
    # token the IdP never granted that scope (red team session 19; the HTTP form's `scope` is
    # split on SP only since the same class was found there).
    vendor = Vendor("auth0", required_scopes=("sekisho",))
    granted = {**v.AUTH0_ACCESS, "scope": "openid sekisho"}
    assert (await vendor.verify(granted, ACCESS)).subject  # the SP-separated control passes
    message = await vendor.refused({**v.AUTH0_ACCESS, "scope": f"openid{space}sekisho"}, ACCESS)
    assert "trust.issuers required_scopes" in message


async def test_okta_org_authorization_server_access_token_refused() -> None:
    org = Vendor("okta", issuer=v.OKTA_ORG_ISSUER)
    await org.refused({**v.OKTA_ACCESS, "iss": v.OKTA_ORG_ISSUER}, ACCESS)
    assert (await org.verify({**v.OKTA_ID, "iss": v.OKTA_ORG_ISSUER}, ID)).subject


# --- Auth0 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "header"),
    [
        pytest.param(v.AUTH0_ACCESS, None, id="auth0-profile-azp"),
        pytest.param(v.AUTH0_ACCESS_RFC9068, {"typ": "at+jwt"}, id="rfc9068-profile-client_id"),
        pytest.param(v.AUTH0_M2M, None, id="client-credentials"),
    ],
)
async def test_auth0_client_in_either_profile(
    shape: dict[str, Any], header: dict[str, Any] | None
) -> None:
    verified = await Vendor("auth0").verify(shape, ACCESS, header=header)
    assert verified.client_id == "my_client_id"


@pytest.mark.parametrize(
    "configured", ["https://my-domain.auth0.com", "https://my-domain.auth0.com/"]
)
async def test_auth0_issuer_with_or_without_trailing_slash(configured: str) -> None:
    vendor = Vendor("auth0", issuer=configured)
    assert (await vendor.verify(v.AUTH0_ID, ID)).issuer == configured


async def test_auth0_namespaced_groups_claim_override() -> None:
    vendor = Vendor("auth0", groups_claim="https://sekisho.example.com/groups")
    assert (await vendor.verify(v.AUTH0_ACCESS, ACCESS)).groups == ("sales",)


# --- Google -----------------------------------------------------------------------------------


async def test_google_both_issuer_forms_and_hosted_domain() -> None:
    vendor = Vendor("google")
    verified = await vendor.verify({**v.GOOGLE_ID, "iss": "accounts.google.com"}, ID)
    assert verified.tenant == "example.com"
    assert verified.client_id == "1234987819200.apps.googleusercontent.com"


# --- overrides and config ---------------------------------------------------------------------


def test_preset_fills_only_what_is_not_set() -> None:
    config = IssuerConfig(
        issuer=v.ENTRA_V2_ISSUER,
        jwks_uri=JWKS_URI,
        preset="entra",
        audiences=("a",),
        tenant_claim="org",
        client_id_claim="azp",
    )
    assert config.tenant_claim == "org"
    assert config.client_claims == ("azp",)  # an explicit single claim replaces the chain
    assert config.groups_claim == "groups" and config.roles_claim == "roles"


def test_unknown_preset_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="preset"):
        IssuerConfig(issuer=v.OKTA_ISSUER, jwks_uri=JWKS_URI, preset="ping", audiences=("a",))


def test_alias_of_one_issuer_may_not_be_another_issuer() -> None:
    entries = [
        {"issuer": v.ENTRA_V2_ISSUER, "jwks_uri": JWKS_URI, "preset": "entra", "audiences": ["a"]},
        {"issuer": v.ENTRA_V1_ISSUER, "jwks_uri": JWKS_URI, "audiences": ["a"]},
    ]
    with pytest.raises(ValueError, match="aliases"):
        Settings(trust={"issuers": entries})


async def test_without_preset_audience_failure_hints_at_the_token_type() -> None:
    vendor = Vendor("keycloak", preset=None, groups_strip_leading_slash=False)
    message = await vendor.refused(v.KEYCLOAK_ACCESS, ID)
    assert f"if it is an access token, set subject_token_type to {ACCESS}" in message
