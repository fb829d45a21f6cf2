"""[status_list]: Token Status List and revocation."""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sekisho.config.section import Section, require_env_name, require_guarded_redis_url


class StatusListConfig(Section):
    """[status_list]: Token Status List (draft-ietf-oauth-status-list) and revocation.

    Minted tokens carry `status.status_list {idx, uri}`; lists are served on the HTTP listener and
    `sekisho revoke …` marks tokens INVALID there (docs/security-team.md "Revocation").
    """

    enabled: bool = False
    # file: SQLite beside the keys, locked, shared by every worker on this host; redis: replicas.
    store: Literal["file", "redis"] = "file"
    path: Path = Path("var/status/status.db")
    # The Redis of store = "redis"; its password (if any) only from the environment variable named
    # by redis_password_env (never inline), rediss:// verified against redis_ca_file when set.
    redis_url: str = ""
    redis_password_env: str = ""
    redis_ca_file: Path | None = None
    # Bits per token (draft §4.1); Sekisho writes 0x00 VALID, 0x01 INVALID and (bits >= 2 only,
    # `sekisho revoke suspend`) 0x02 SUSPENDED.
    bits: Literal[1, 2, 4, 8] = 2
    list_size: int = Field(default=100_000, ge=1_000, le=10_000_000)
    lease_size: int = Field(default=1_000, ge=1, le=100_000)
    lease_seconds: int = Field(default=60, ge=1, le=3600)
    ttl_seconds: int = Field(default=60, ge=1, le=86_400)
    lifetime_seconds: int = Field(default=600, ge=2, le=86_400)
    flush_interval_seconds: float = Field(default=0.2, gt=0, le=5)
    poll_seconds: float = Field(default=0.5, gt=0, le=2)
    audit_log: str = ""

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return require_guarded_redis_url(
            value, "redis_url", env_setting="status_list.redis_password_env"
        )

    @field_validator("redis_password_env")
    @classmethod
    def _password_env(cls, value: str) -> str:
        return require_env_name(value, "redis_password_env")

    @model_validator(mode="after")
    def _consistent(self) -> "StatusListConfig":
        if self.store == "redis" and not self.redis_url:
            raise ValueError("status_list.store = 'redis' needs status_list.redis_url")
        if self.lease_size > self.list_size:
            raise ValueError("status_list.lease_size must not exceed status_list.list_size")
        if self.lifetime_seconds <= self.ttl_seconds:
            raise ValueError("status_list.lifetime_seconds must exceed status_list.ttl_seconds")
        return self

    @property
    def audit_log_path(self) -> Path:
        """`audit_log`, or revocations.log beside the file store when unset."""
        return Path(self.audit_log) if self.audit_log else self.path.parent / "revocations.log"
