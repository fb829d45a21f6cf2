"""Claim rules for inbound tokens, one function per rule; `now` is always a parameter.

RFC 7519 §4.1 (registered claims), OIDC Core §2 and §3.1.3.7 (ID token validation), RFC 9068 §4
(access token validation), and the AgentCore customJWTAuthorizer semantics for audiences/clients.
"""

import math
from collections.abc import Iterable, Mapping
from typing import Any

from sekisho.codepoints import free_text, identity_text, plain_json_text, strings_in
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import (
    AudienceMismatchError,
    ClientNotAcceptedError,
    MalformedTokenError,
    MissingClaimError,
    RequiredScopeMissingError,
    TokenExpiredError,
    TokenNotYetValidError,
)
from sekisho.identity.issuer_config import IssuerConfig

# NumericDate upper bound: year 9999. Anything larger is hostile or broken.
MAX_NUMERIC_DATE = 253402300799


def numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    """A NumericDate claim as int seconds. Raises: MissingClaimError, MalformedTokenError."""
    value = claims.get(name)
    if value is None:
        if required:
            raise MissingClaimError(log_detail=f"missing {name}")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedTokenError(log_detail=f"{name} is not a number")
    # Only floats can be inf/nan; math.isfinite on a huge JSON int raises OverflowError.
    if isinstance(value, float) and not math.isfinite(value):
        raise MalformedTokenError(log_detail=f"{name} is not a number")
    if value < 0 or value > MAX_NUMERIC_DATE:
        raise MalformedTokenError(log_detail=f"{name} is out of range")
    return int(value)


def validate_times(claims: Mapping[str, Any], now: float, leeway: int) -> int:
    """Check exp (required), nbf and iat; return exp.

    Raises: TokenExpiredError, TokenNotYetValidError, MissingClaimError, MalformedTokenError.
    """
    exp = numeric_date(claims, "exp", required=True)
    assert exp is not None
    if exp <= now - leeway:
        raise TokenExpiredError(log_detail="token expired")
    nbf = numeric_date(claims, "nbf", required=False)
    if nbf is not None and nbf > now + leeway:
        raise TokenNotYetValidError(log_detail="token not yet valid (nbf)")
    iat = numeric_date(claims, "iat", required=False)
    if iat is not None and iat > now + leeway:
        raise TokenNotYetValidError(log_detail="token issued in the future (iat)")
    return exp


def validate_subject(claims: Mapping[str, Any]) -> str:
    """Raises: MissingClaimError when sub is missing or not a non-empty string."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise MissingClaimError(log_detail="missing or non-string sub")
    return sub


def audiences_of(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """`aud` as a tuple (RFC 7519 §4.1.3: a string or an array of strings)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    if aud is None:
        return ()
    raise MalformedTokenError(log_detail="aud is neither a string nor an array of strings")


def client_id_of(claims: Mapping[str, Any], config: IssuerConfig, token_type: str) -> str:
    """The client the IdP issued the token to: the first of `client_claims` present
    (`client_id_claims`, else `client_id_claim`).

    For ID tokens, OIDC's `azp`, then a single `aud`, identify the client when the claim is absent.
    """
    for name in config.client_claims:
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    if token_type == TOKEN_TYPE_ID_TOKEN:
        azp = claims.get("azp")
        if isinstance(azp, str) and azp:
            return azp
        auds = audiences_of(claims)
        if len(auds) == 1:
            return auds[0]
    return ""


def validate_audience(
    claims: Mapping[str, Any], config: IssuerConfig, token_type: str, client_id: str
) -> None:
    """ID token: aud ∈ audiences, and client ∈ client_ids when configured.
    Access token: aud ∈ audiences, or client ∈ client_ids.

    A configured client check is never skipped because the client claim is absent.
    Raises: AudienceMismatchError, ClientNotAcceptedError, MalformedTokenError.
    """
    aud_ok = bool(set(audiences_of(claims)) & set(config.audiences))
    client_ok = bool(client_id) and client_id in config.client_ids
    if token_type == TOKEN_TYPE_ID_TOKEN:
        if not aud_ok:
            raise _audience_mismatch("id_token aud is not an accepted audience", id_token=True)
        if config.client_ids and not client_ok:
            raise _audience_mismatch(
                "id_token client is not an accepted client",
                id_token=True,
                leaf=ClientNotAcceptedError,
            )
        return
    if not (aud_ok or client_ok):
        raise _audience_mismatch(
            "access token matches neither an accepted audience nor an accepted client",
            id_token=False,
        )


def _audience_mismatch(
    detail: str,
    *,
    id_token: bool,
    leaf: type[AudienceMismatchError | ClientNotAcceptedError] = AudienceMismatchError,
) -> AudienceMismatchError | ClientNotAcceptedError:
    # Checked only after the signature: the caller holds a genuine token of a trusted IdP, so
    # naming the settings involved reveals nothing a forger could use.
    hint = (
        f"; if it is an access token, set subject_token_type to {TOKEN_TYPE_ACCESS_TOKEN}"
        if id_token
        else ""
    )
    return leaf(
        "the token was issued for an audience or client this issuer is not trusted for "
        f"(operator: trust.issuers audiences / client_ids){hint}",
        log_detail=detail,
    )


def validate_scopes(claims: Mapping[str, Any], config: IssuerConfig, token_type: str) -> None:
    """An access token must carry every one of `required_scopes`.

    Raises: RequiredScopeMissingError.
    """
    if token_type == TOKEN_TYPE_ID_TOKEN or not config.required_scopes:
        return
    missing = set(config.required_scopes) - set(scopes_of(claims, config.scope_claim))
    if missing:
        raise RequiredScopeMissingError(
            "the access token lacks a scope this issuer requires "
            "(operator: trust.issuers required_scopes)",
            log_detail=f"missing required scopes {sorted(missing)} in {config.scope_claim}",
        )


def scopes_of(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """Scopes as a tuple: RFC 8693 §4.2 space-separated string, or an array (Okta `scp`)."""
    value = claims.get(name)
    if isinstance(value, str):
        # SP (%x20) only (RFC 6749 §3.3): str.split() also splits on U+00A0, U+3000 and the
        # other Unicode spaces free_text lets through, so "openid<NBSP>sekisho", one token at
        # the IdP, carried a required scope it was never granted (red team session 19).
        return tuple(scope for scope in value.split(" ") if scope)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The claim named `path`, else the value at its dotted path (`realm_access.roles`)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def groups_of(claims: Mapping[str, Any], config: IssuerConfig) -> tuple[str, ...]:
    """`groups_claim` then `roles_claim` values, Keycloak full paths made relative if configured."""
    groups = _string_list(claim_at(claims, config.groups_claim))
    if config.groups_strip_leading_slash:
        groups = tuple(group.removeprefix("/") for group in groups)
    roles = _string_list(claim_at(claims, config.roles_claim)) if config.roles_claim else ()
    return tuple(dict.fromkeys(groups + roles))


def string_claim(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    return value if isinstance(value, str) else ""


def string_list_claim(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """A list-of-strings claim; a lone string counts as a list of one; other types are ignored."""
    return _string_list(claims.get(name))


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def validate_strings(
    claims: Mapping[str, Any], identity: Iterable[str], *, claims_text: str = ""
) -> None:
    """One meaning per string (codepoints.py): the policy reads every claim, so none may hold a
    control character or a lone surrogate; the identity values it compares and the minted token
    repeats (`identity`) must also be free of invisible and unassigned code points.

    `claims_text`: the JSON text `claims` was parsed from, if known. When it is plain (printable,
    no escapes: codepoints.plain_json_text) every claim string is free text, and the strings are
    not walked one by one.

    Raises: MalformedTokenError.
    """
    plain = bool(claims_text) and plain_json_text(claims_text)
    if not plain and not all(free_text(s) for s in strings_in(claims)):
        raise MalformedTokenError(log_detail="a claim holds control characters")
    # identity_text is a property of each code point, so it holds for every string exactly when
    # it holds for their concatenation: one call instead of one per string.
    if not identity_text("".join(identity)):
        raise MalformedTokenError(
            log_detail="an identity claim holds invisible or control code points"
        )
