"""The vendor's own word on what a token is, held against the type the caller declared.

RFC 8693 §2.1 lets the caller say what the subject token is (`subject_token_type`); an IdP says it
too, each in its own way (identity/presets.py). When they disagree the token is refused, so an ID
token can never pass as an access token or the reverse (issue 18: Keycloak access tokens accepted
as ID tokens once `account` was an accepted audience). The public message names the setting to
look at and never echoes the token.
"""

from collections.abc import Mapping
from typing import Any

from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import TokenTypeError, VendorRuleError
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.identity.presets import PRESETS, TokenKind

_URN: Mapping[TokenKind, str] = {"id": TOKEN_TYPE_ID_TOKEN, "access": TOKEN_TYPE_ACCESS_TOKEN}
_NAME: Mapping[TokenKind, str] = {"id": "an ID token", "access": "an access token"}


def declared_kind(token_type: str) -> TokenKind:
    """The kind a token type URN claims (anything but id_token is held to access-token rules)."""
    return "id" if token_type == TOKEN_TYPE_ID_TOKEN else "access"


def check_kind(
    header: Mapping[str, Any], claims: Mapping[str, Any], config: IssuerConfig, token_type: str
) -> None:
    """Refuse a token whose vendor signal contradicts `token_type`, or a vendor rule it breaks.

    Raises:
        TokenTypeError: kind mismatch or missing signal.
        VendorRuleError: a failed vendor rule.
    """
    if config.preset is None:
        return
    preset = PRESETS[config.preset]
    declared = declared_kind(token_type)
    if config.check_token_kind:
        actual = preset.kind_of(header, claims)
        if actual is None:
            raise TokenTypeError(
                f"the token carries no {preset.name} token-kind signal "
                f"({preset.kind_signal}); check the issuer's preset in trust.issuers",
                log_detail=f"preset {preset.name}: no token-kind signal",
            )
        if actual != declared:
            raise TokenTypeError(
                f"the token is {_NAME[actual]} but was sent as {_NAME[declared]}: set "
                f"subject_token_type (or actor_token_type) to {_URN[actual]}",
                log_detail=f"preset {preset.name}: {actual} token declared as {token_type}",
            )
    problem = preset.vendor_check(claims, declared)
    if problem:
        raise VendorRuleError(
            "the subject or actor token is invalid", log_detail=f"preset {preset.name}: {problem}"
        )
