"""[keys] (the signing keystore, its lifecycle, the AWS KMS backends) and [tokens] (lifetime of
minted tokens, caching of the published JWKS)."""

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sekisho.config.section import Section, require_env_name
from sekisho.constants import SigningAlgorithm
from sekisho.urls import require_secure_url


class KeysConfig(Section):
    """[keys]: the signing keystore, its lifecycle and the AWS KMS backends."""

    backend: Literal["file", "kms", "kms-wrapped"] = "file"
    dir: Path = Path("var/keys")
    algorithm: SigningAlgorithm = "ES256"
    watch: bool = True
    poll_seconds: float = Field(default=2.0, ge=0.1, le=5.0)
    rotation_period: int = Field(default=0, ge=0)
    audit_log: str = ""
    passphrase_env: str = ""
    kms_region: str = ""
    kms_endpoint_url: str = ""
    kms_alias_prefix: str = "sekisho"
    kms_wrapping_key_id: str = ""
    kms_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # Revocation takes effect or shouts (docs/security.md): retry a failed reload with backoff
    # up to this interval; the CLI checks `service_user` can read what it wrote and asks
    # `replica_urls` whether they picked a change up, for up to `pickup_wait_seconds`.
    retry_max_seconds: float = Field(default=30.0, ge=1.0, le=600.0)
    # Files of retired and revoked keys: "delete" at the change that retires or revokes them,
    # or "keep" them (e.g. to verify old tokens offline; protect them like live keys).
    private_key_retention: Literal["delete", "keep"] = "delete"
    # Key files readable by group or others, or owned by another user, and keystore folders that
    # others may write, are refused at load (signing/filemodes.py) unless this says they are
    # shared on purpose (e.g. root-owned 0640 files with the service in the group).
    allow_loose_key_files: bool = False
    service_user: str = ""
    replica_urls: list[str] = Field(default_factory=list, max_length=64)
    pickup_wait_seconds: float = Field(default=10.0, ge=0.0, le=300.0)

    @field_validator("replica_urls")
    @classmethod
    def _replica_urls(cls, value: list[str]) -> list[str]:
        # Read only to report (the JWKS is public): http is allowed, e.g. pod addresses.
        for url in value:
            if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
                raise ValueError(f"replica_urls: {url[:80]!r} is not an http(s) base URL")
        return [url.rstrip("/") for url in value]

    @property
    def audit_log_path(self) -> Path:
        """`audit_log`, or audit.log inside `dir` when unset."""
        return Path(self.audit_log) if self.audit_log else self.dir / "audit.log"

    @field_validator("passphrase_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        return require_env_name(value, "passphrase_env")

    @field_validator("kms_endpoint_url")
    @classmethod
    def _kms_url(cls, value: str) -> str:
        return require_secure_url(value, "kms_endpoint_url") if value else value

    @field_validator("kms_alias_prefix")
    @classmethod
    def _alias_prefix(cls, value: str) -> str:
        # KMS alias names allow [A-Za-z0-9/_-] and reserve alias/aws/.
        if not re.fullmatch(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*", value):
            raise ValueError("kms_alias_prefix may hold only letters, digits, '_', '-' and '/'")
        if value.split("/", 1)[0] == "aws":
            raise ValueError("kms_alias_prefix must not start with 'aws' (reserved by AWS)")
        return value

    @model_validator(mode="after")
    def _backend_settings(self) -> "KeysConfig":
        if self.backend == "kms-wrapped" and not self.kms_wrapping_key_id:
            raise ValueError("backend 'kms-wrapped' needs kms_wrapping_key_id")
        if self.backend == "kms" and self.algorithm == "EdDSA":
            raise ValueError("backend 'kms' signs ES256, PS256 or RS256, not EdDSA")
        if self.passphrase_env and self.backend != "file":
            raise ValueError("passphrase_env applies to backend 'file' only")
        return self


class TokensConfig(Section):
    """[tokens]: lifetime of minted tokens and caching of the published JWKS."""

    max_lifetime_seconds: int = Field(default=300, ge=10, le=3600)
    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86400)
