"""The two token profiles Sekisho mints, in one table (docs/architecture.md §4): everything that
tells an ID-JAG from an RFC 9068 access token — minting, inbound refusal of our own tokens, the
gateway's route profiles, RFC 8414 metadata and `sekisho.verify` — reads it from here.

ID-JAG: draft-ietf-oauth-identity-assertion-authz-grant (`typ: oauth-id-jag+jwt`, `aud` = the
downstream authorization server, exactly one, redeemed once via RFC 7523). Access token: RFC 9068
(`typ: at+jwt`, `aud` = the resource(s) when named). Explicit typing (RFC 8725 §3.11) keeps them
from being confused. Standard library only, so the SDKs may use it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from sekisho.constants import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_JAG,
    TYP_ACCESS_TOKEN,
    TYP_ID_JAG,
)

ProfileName = Literal["id-jag", "access_token"]


@dataclass(frozen=True, slots=True)
class TokenProfile:
    """What one profile means on the wire and to a verifier."""

    name: ProfileName  # config (`[[gateway.routes]] token_profile`) and sekisho.verify
    token_type_urn: str  # requested_token_type / issued_token_type (RFC 8693 §3)
    typ: str  # JOSE header `typ`
    token_type: str  # RFC 8693 §2.2.1 `token_type` in the response
    aud_is_resource: bool  # `aud` = the requested resource(s) when named, else the audience
    single_audience: bool  # `aud` must be exactly one value (audience injection at leg 2)
    single_use: bool  # `jti` may be redeemed once: a verifier needs a replay cache


ID_JAG = TokenProfile(
    name="id-jag",
    token_type_urn=TOKEN_TYPE_ID_JAG,
    typ=TYP_ID_JAG,
    token_type="N_A",  # noqa: S106 (RFC 8693 token_type, not a password)
    aud_is_resource=False,
    single_audience=True,
    single_use=True,
)
ACCESS_TOKEN = TokenProfile(
    name="access_token",
    token_type_urn=TOKEN_TYPE_ACCESS_TOKEN,
    typ=TYP_ACCESS_TOKEN,
    token_type="Bearer",  # noqa: S106 (RFC 8693 token_type, not a password)
    aud_is_resource=True,
    single_audience=False,
    single_use=False,
)
PROFILES = (ID_JAG, ACCESS_TOKEN)
BY_NAME: Mapping[str, TokenProfile] = {p.name: p for p in PROFILES}
BY_TOKEN_TYPE: Mapping[str, TokenProfile] = {p.token_type_urn: p for p in PROFILES}
MINTED_TYPS = frozenset(p.typ for p in PROFILES)


def profile_for(token_type_urn: str) -> TokenProfile:
    """The profile of a (validated) requested_token_type. Raises: KeyError for any other URN."""
    return BY_TOKEN_TYPE[token_type_urn]
