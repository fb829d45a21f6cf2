"""[trust]: inbound token verification; each [[trust.issuers]] entry is identity/issuer_config.py's
IssuerConfig."""

from pydantic import Field, field_validator, model_validator

from sekisho.config.section import Section
from sekisho.identity.issuer_config import IssuerConfig


class TrustConfig(Section):
    """[trust]: inbound token verification."""

    issuers: tuple[IssuerConfig, ...] = ()
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: int = Field(default=300, ge=10)
    jwks_refetch_min_interval_seconds: float = Field(default=30.0, ge=0)
    # How long after the refetch an unknown kid triggers (or joins) began the request waits for
    # it, then UNAVAILABLE; the fetch goes on for the next call. Unbounded, a made-up kid held its
    # exchange for the whole fetch while the IdP answered slowly (verify/jwks.py).
    unknown_kid_wait_seconds: float = Field(default=1.0, ge=0)
    # Last good keys outlive an IdP outage by at most this long; then exchanges fail closed.
    jwks_max_stale_seconds: int = Field(default=86400, ge=60)
    http_timeout_seconds: float = Field(default=5.0, gt=0)
    max_token_bytes: int = Field(default=16384, ge=1024)
    # Deepest nested `act` (RFC 8693 §4.1) accepted in an inbound token; deeper = invalid token.
    max_act_depth: int = Field(default=4, ge=1, le=32)

    @field_validator("issuers")
    @classmethod
    def _unique(cls, value: tuple[IssuerConfig, ...]) -> tuple[IssuerConfig, ...]:
        names = [form for entry in value for form in entry.accepted_issuers]
        if len(names) != len(set(names)):
            raise ValueError("each issuer (and each of its aliases) may appear only once")
        return value

    @model_validator(mode="after")
    def _stale_outlives_refresh(self) -> "TrustConfig":
        # Shorter, and healthy keys would expire between two background refreshes.
        if self.jwks_max_stale_seconds <= self.jwks_cache_seconds:
            raise ValueError(
                f"trust.jwks_max_stale_seconds ({self.jwks_max_stale_seconds}) must exceed "
                f"trust.jwks_cache_seconds ({self.jwks_cache_seconds})"
            )
        return self
