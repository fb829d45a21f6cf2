"""One [[trust.issuers]] entry: the settings the verifier, the claim rules and the token-kind
check read (docs/operators.md "[trust] and [[trust.issuers]]"). Kept apart from the config
package, which includes it in [trust], so the identity package depends on no composition module.
"""

from typing import Any, Literal

from pydantic import field_validator, model_validator

from sekisho.constants import ASYMMETRIC_ALGORITHMS
from sekisho.identity.presets import PRESETS, PresetName, preset_config_problem
from sekisho.strict_model import StrictModel
from sekisho.urls import require_secure_url


class IssuerConfig(StrictModel):
    """One [[trust.issuers]] entry: a trusted IdP."""

    issuer: str
    discovery_url: str = ""
    jwks_uri: str = ""
    audiences: tuple[str, ...] = ()
    client_ids: tuple[str, ...] = ()
    client_id_claim: Literal["client_id", "azp", "cid", "appid"] = "client_id"
    groups_claim: str = "groups"
    tenant_claim: str = "tenant"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    # IdP presets (identity/presets.py, docs/operators.md "Identity provider presets"): the vendor
    # fills the settings below and its token-kind check; any setting given here wins.
    preset: PresetName | None = None
    client_id_claims: tuple[str, ...] = ()  # tried in order; replaces client_id_claim when set
    roles_claim: str = ""  # dotted path; its values join groups_claim's
    groups_strip_leading_slash: bool = False  # Keycloak full group paths: "/sales" → "sales"
    scope_claim: str = "scope"  # a space-separated string or an array of strings
    required_scopes: tuple[str, ...] = ()  # an access token must carry every one of them
    issuer_aliases: tuple[str, ...] = ()  # more `iss` spellings of this IdP (same keys)
    check_token_kind: bool = True  # with a preset: the vendor's ID/access signal must match

    @model_validator(mode="before")
    @classmethod
    def _preset_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("preset") not in PRESETS:
            return data
        defaults = dict(PRESETS[data["preset"]].defaults)
        if "client_id_claim" in data:  # an explicit single claim overrides the preset's chain
            defaults.pop("client_id_claims", None)
        return defaults | data

    @property
    def client_claims(self) -> tuple[str, ...]:
        """The claims naming the client, in the order they are tried."""
        return self.client_id_claims or (self.client_id_claim,)

    @property
    def accepted_issuers(self) -> tuple[str, ...]:
        """`issuer`, the preset's other spellings of it, and `issuer_aliases`."""
        forms = PRESETS[self.preset].issuer_forms(self.issuer) if self.preset else ()
        return tuple(dict.fromkeys((self.issuer, *forms, *self.issuer_aliases)))

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, value: str) -> str:
        return require_secure_url(value, "issuer")

    @field_validator("discovery_url", "jwks_uri")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        return require_secure_url(value, "URL") if value else value

    @field_validator("issuer_aliases")
    @classmethod
    def _alias_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for alias in value:
            require_secure_url(alias, "issuer_aliases entry")
        return value

    @field_validator("client_id_claims", "required_scopes")
    @classmethod
    def _no_empty_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not name for name in value):
            raise ValueError("entries must be non-empty")
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Never `none`, never HS*: a symmetric alg would let the IdP's public key act as a MAC key.
        bad = [alg for alg in value if alg not in ASYMMETRIC_ALGORITHMS]
        if bad or not value:
            allowed = ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
            raise ValueError(f"unsupported algorithm(s) {bad}; choose from {allowed}")
        return value

    @model_validator(mode="after")
    def _one_key_source_and_a_check(self) -> "IssuerConfig":
        if bool(self.discovery_url) == bool(self.jwks_uri):
            raise ValueError("set exactly one of discovery_url or jwks_uri")
        if not self.audiences and not self.client_ids:
            raise ValueError(
                "set audiences and/or client_ids: a token for any client is not accepted"
            )
        return self

    @model_validator(mode="after")
    def _preset_fits(self) -> "IssuerConfig":
        problem = (
            preset_config_problem(self.preset, self.issuer, self.audiences) if self.preset else ""
        )
        if problem:
            raise ValueError(problem)
        return self
