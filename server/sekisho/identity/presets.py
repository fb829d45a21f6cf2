"""IdP presets: each vendor's claim layout, issuer forms and its own signal of the token's kind.

`[[trust.issuers]] preset = "keycloak"` fills the claim settings below (any of them stays
overridable in the entry) and turns on the vendor's token-kind check, so an ID token can never
pass as an access token or the reverse (docs/operators.md "Identity provider presets").

Sources, per vendor (the test fixtures in tests/unit/identity/vendor_tokens.py cite the same):
- Keycloak: payload `typ` "ID" | "Bearer", `azp`, group mapper full paths "/sales"
  (https://www.keycloak.org/docs/latest/server_admin/#_protocol-mappers).
- Amazon Cognito: `token_use` "id" | "access"; access tokens carry `client_id` and no `aud`
  (https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html).
- Microsoft Entra ID: access tokens always name the client (`appid` v1, `azp` v2), ID tokens never
  do; `ver` "1.0" tokens come from https://sts.windows.net/{tid}/ and "2.0" tokens from
  https://login.microsoftonline.com/{tid}/v2.0; groups overage replaces `groups` with `_claim_names`
  (https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference).
- Okta: access tokens carry `cid` and `scp` (an array), ID tokens neither; org authorization server
  access tokens are for Okta's own APIs only
  (https://developer.okta.com/docs/guides/validate-access-tokens/main/).
- Auth0: access tokens name the client in `azp` (Auth0 profile) or `client_id` (RFC 9068 profile,
  header `typ: at+jwt`) and carry `scope`; the issuer ends in "/"
  (https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles).
- Google: only ID tokens are JWTs (access tokens are opaque); `iss` is "https://accounts.google.com"
  or "accounts.google.com"; `hd` is the Workspace domain
  (https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload).
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

TokenKind = Literal["id", "access"]
PresetName = Literal["okta", "auth0", "entra", "cognito", "keycloak", "google"]

Claims = Mapping[str, Any]
KindReader = Callable[[Claims, Claims], TokenKind | None]

_ENTRA_V1 = re.compile(r"https://sts\.windows\.net/([0-9a-f-]{36})/")
_ENTRA_V2 = re.compile(r"https://login\.microsoftonline\.com/([0-9a-f-]{36})/v2\.0")
_MULTI_TENANT = ("common", "organizations", "consumers")


@dataclass(frozen=True, slots=True)
class Preset:
    """One vendor: the IssuerConfig defaults it fills and how its tokens say what they are."""

    name: PresetName
    defaults: Mapping[str, Any]
    kind_of: KindReader  # (header, claims) → kind, or None when the token carries no signal
    kind_signal: str  # where the vendor puts the signal, for messages and docs
    issuer_forms: Callable[[str], tuple[str, ...]]  # other `iss` spellings of the same authority
    vendor_check: Callable[[Claims, TokenKind], str]  # "" when fine, else what is wrong


def _no_other_forms(issuer: str) -> tuple[str, ...]:
    return ()


def _no_check(claims: Claims, kind: TokenKind) -> str:
    return ""


def _by_claim(name: str, id_value: str, access_value: str) -> KindReader:
    def kind_of(header: Claims, claims: Claims) -> TokenKind | None:
        value = claims.get(name)
        if value == id_value:
            return "id"
        return "access" if value == access_value else None

    return kind_of


def _header_typ(header: Claims) -> str:
    typ = header.get("typ")
    return typ.lower().removeprefix("application/") if isinstance(typ, str) else ""


def _entra_kind(header: Claims, claims: Claims) -> TokenKind | None:
    # An access token always names the client it was issued to (appid v1, azp v2) and may carry
    # the idtyp optional claim; an ID token has none of them.
    if any(name in claims for name in ("appid", "azp", "idtyp")):
        return "access"
    return "id"


def _okta_kind(header: Claims, claims: Claims) -> TokenKind | None:
    return "access" if "cid" in claims or "scp" in claims else "id"


def _auth0_kind(header: Claims, claims: Claims) -> TokenKind | None:
    if _header_typ(header) == "at+jwt":
        return "access"
    if any(name in claims for name in ("scope", "gty", "permissions")):
        return "access"
    return "id"


def _google_kind(header: Claims, claims: Claims) -> TokenKind | None:
    return "id"  # Google's access tokens are opaque: every Google JWT is an ID token


def entra_tenant(issuer: str) -> str:
    """The tenant id in an Entra issuer of either version, or ""."""
    match = _ENTRA_V1.fullmatch(issuer) or _ENTRA_V2.fullmatch(issuer)
    return match.group(1) if match else ""


def _entra_forms(issuer: str) -> tuple[str, ...]:
    tenant = entra_tenant(issuer)
    if not tenant:
        return ()
    forms = (
        f"https://sts.windows.net/{tenant}/",
        f"https://login.microsoftonline.com/{tenant}/v2.0",
    )
    return tuple(form for form in forms if form != issuer)


def _entra_check(claims: Claims, kind: TokenKind) -> str:
    iss, ver = str(claims.get("iss", "")), claims.get("ver")
    expected = "1.0" if _ENTRA_V1.fullmatch(iss) else "2.0"
    if ver != expected:
        return f"Entra token ver {ver!r} does not match its issuer form (expected {expected!r})"
    if claims.get("tid") != entra_tenant(iss):
        return "Entra token tid does not match the tenant in its issuer"
    # Groups overage: `groups` is replaced by a pointer to Graph. The list would be incomplete, so
    # a policy that denies by group could be bypassed: refuse instead of guessing.
    names = claims.get("_claim_names")
    if claims.get("hasgroups") is True or (isinstance(names, dict) and "groups" in names):
        return "Entra groups overage: the token does not list the user's groups"
    return ""


def _okta_check(claims: Claims, kind: TokenKind) -> str:
    if kind == "access" and "/oauth2/" not in str(claims.get("iss", "")):
        return "an Okta org authorization server access token is for Okta's own APIs only"
    return ""


def _auth0_forms(issuer: str) -> tuple[str, ...]:
    return (issuer.removesuffix("/"),) if issuer.endswith("/") else (issuer + "/",)


def _google_forms(issuer: str) -> tuple[str, ...]:
    if issuer == "https://accounts.google.com":
        return ("accounts.google.com",)
    return ()


PRESETS: Final[Mapping[str, Preset]] = {
    preset.name: preset
    for preset in (
        Preset(
            name="keycloak",
            defaults={
                "client_id_claims": ("azp",),
                "groups_claim": "groups",
                "groups_strip_leading_slash": True,
                "scope_claim": "scope",
            },
            kind_of=_by_claim("typ", "ID", "Bearer"),
            kind_signal="payload claim typ (ID | Bearer)",
            issuer_forms=_no_other_forms,
            vendor_check=_no_check,
        ),
        Preset(
            name="cognito",
            defaults={
                "client_id_claims": ("client_id",),
                "groups_claim": "cognito:groups",
                "scope_claim": "scope",
            },
            kind_of=_by_claim("token_use", "id", "access"),
            kind_signal="payload claim token_use (id | access)",
            issuer_forms=_no_other_forms,
            vendor_check=_no_check,
        ),
        Preset(
            name="entra",
            defaults={
                "client_id_claims": ("azp", "appid"),
                "groups_claim": "groups",
                "roles_claim": "roles",
                "tenant_claim": "tid",
                "scope_claim": "scp",
            },
            kind_of=_entra_kind,
            kind_signal="client claims appid/azp and idtyp (present only in access tokens)",
            issuer_forms=_entra_forms,
            vendor_check=_entra_check,
        ),
        Preset(
            name="okta",
            defaults={"client_id_claims": ("cid",), "groups_claim": "groups", "scope_claim": "scp"},
            kind_of=_okta_kind,
            kind_signal="payload claims cid and scp (present only in access tokens)",
            issuer_forms=_no_other_forms,
            vendor_check=_okta_check,
        ),
        Preset(
            name="auth0",
            defaults={
                "client_id_claims": ("client_id", "azp"),
                "groups_claim": "groups",
                "scope_claim": "scope",
            },
            kind_of=_auth0_kind,
            kind_signal="header typ at+jwt or payload scope/gty/permissions (access tokens only)",
            issuer_forms=_auth0_forms,
            vendor_check=_no_check,
        ),
        Preset(
            name="google",
            defaults={"client_id_claims": ("azp",), "groups_claim": "groups", "tenant_claim": "hd"},
            kind_of=_google_kind,
            kind_signal="none needed: Google issues only ID tokens as JWTs",
            issuer_forms=_google_forms,
            vendor_check=_no_check,
        ),
    )
}


def preset_config_problem(name: str, issuer: str, audiences: tuple[str, ...]) -> str:
    """A configuration the preset knows cannot work as intended, or ""."""
    if name == "entra" and not entra_tenant(issuer):
        if any(f"/{word}/" in issuer for word in _MULTI_TENANT):
            return "preset 'entra' needs a tenant-specific issuer, not a multi-tenant endpoint"
        return (
            "preset 'entra' needs issuer https://login.microsoftonline.com/<tenant id>/v2.0 "
            "or https://sts.windows.net/<tenant id>/"
        )
    if name == "keycloak" and "account" in audiences:
        # Every Keycloak access token with account roles carries aud "account", whatever client
        # it was issued to: accepting it accepts tokens meant for any client of the realm.
        return (
            "preset 'keycloak': 'account' in audiences accepts any client's token; use client_ids"
        )
    return ""
