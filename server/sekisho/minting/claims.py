"""Claims of minted tokens (docs/architecture.md §4).

Profile `id-jag` follows draft-ietf-oauth-identity-assertion-authz-grant §"ID-JAG Claims":
`aud` is exactly one string (the downstream authorization server's issuer; an array would allow
audience injection at leg 2). Profile `access_token` follows RFC 9068 §2.2 with `aud` = the
resource. Both carry the same identity claims; `typ` in the header keeps them apart.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sekisho.models import VerifiedToken
from sekisho.profiles import profile_for

# Claims Sekisho owns; policy `claims` may not set or override them.
RESERVED_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "nbf",
        "iat",
        "jti",
        "client_id",
        "scope",
        "resource",
        "act",
        "tenant",
        "auth_time",
        "acr",
        "amr",
        "cnf",
        "may_act",
        "typ",
        "azp",
        "aud_tenant",
        "aud_sub",
        "authorization_details",
        "status",
    }
)


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """Everything claim building needs, decided before any signing."""

    issuer: str
    profile: str  # a requested_token_type URN
    audience: str
    resources: tuple[str, ...]
    scopes: tuple[str, ...]
    client_id: str
    jti: str
    issued_at: int
    expires_at: int
    act: Mapping[str, Any] | None  # the delegation chain (delegation.actor_chain)
    extra: Mapping[str, Any]
    # draft-ietf-oauth-status-list §6.1 `status` claim, when [status_list] is enabled.
    status: Mapping[str, Any] | None = None


def _one_or_many(values: tuple[str, ...]) -> str | list[str]:
    return values[0] if len(values) == 1 else list(values)


def token_audience(facts: TokenFacts) -> str | list[str]:
    """ID-JAG: the authorization server. Access token: the resource(s) (RFC 9068 §3)."""
    if not profile_for(facts.profile).aud_is_resource or not facts.resources:
        return facts.audience
    return _one_or_many(facts.resources)


def build_claims(facts: TokenFacts, subject: VerifiedToken) -> dict[str, Any]:
    """The payload of a minted token."""
    claims: dict[str, Any] = {
        "iss": facts.issuer,
        "sub": subject.subject,
        "aud": token_audience(facts),
        "client_id": facts.client_id,
        "jti": facts.jti,
        "iat": facts.issued_at,
        "exp": facts.expires_at,
    }
    if facts.scopes:
        claims["scope"] = " ".join(facts.scopes)
    if facts.resources:
        claims["resource"] = _one_or_many(facts.resources)
    _copy_authentication(claims, subject)
    if subject.tenant:
        claims["tenant"] = subject.tenant
    if facts.act:
        claims["act"] = dict(facts.act)
    if facts.status is not None:
        claims["status"] = dict(facts.status)
    claims.update(facts.extra)
    return claims


def _copy_authentication(claims: dict[str, Any], subject: VerifiedToken) -> None:
    if subject.auth_time:
        claims["auth_time"] = subject.auth_time
    if subject.acr:
        claims["acr"] = subject.acr
    if subject.amr:
        claims["amr"] = list(subject.amr)
