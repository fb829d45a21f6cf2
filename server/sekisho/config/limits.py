"""[limits] (bounds on request fields) and [cache] (the hot-path caches)."""

from pydantic import Field

from sekisho.config.section import Section


class LimitsConfig(Section):
    """[limits]: bounds on request fields; each refusal names the key (issue 7 item 2).

    Token size is `trust.max_token_bytes`.
    """

    max_scopes: int = Field(default=64, ge=1)
    max_scope_length: int = Field(default=256, ge=1)
    max_resources: int = Field(default=16, ge=1)
    max_value_length: int = Field(default=1024, ge=64)
    max_context_depth: int = Field(default=8, ge=1)
    max_context_keys: int = Field(default=128, ge=1)
    max_context_bytes: int = Field(default=8192, ge=64)
    grpc_max_message_bytes: int = Field(default=262144, ge=16384)


class CacheConfig(Section):
    """[cache]: the hot-path caches (verified subject tokens, policy decisions); 0 disables."""

    subject_max_entries: int = Field(default=10000, ge=0)
    # A verified token is reused until its exp, but never longer than this after verification.
    subject_max_seconds: int = Field(default=300, ge=1, le=3600)
    decision_max_entries: int = Field(default=10000, ge=0)
