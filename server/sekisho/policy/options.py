"""Settings of the decision log (`[decision_log]`) and the shadow policy (`[policy.shadow]`).

Kept apart from the config package, which includes both, so the models of one feature read
together.
docs/operations.md#decision-log and docs/policy-authors.md#shipping-a-change-safely say how to
use them; config/example.toml documents every key.
"""

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from sekisho.strict_model import StrictModel


def _input_path(value: str) -> str:
    parts = value.split(".")
    if not value or not all(part and part.isprintable() for part in parts):
        raise ValueError(f"'{value}' is not a dotted path into the input, like subject.email")
    return value


class DecisionLogConfig(StrictModel):
    """[decision_log]: one JSON line per policy decision, input and result (personal data)."""

    enabled: bool = False
    path: Path = Path("var/decisions.jsonl")
    # Size-based rotation: path → path.1 → … → path.<max_files>; the oldest is deleted.
    max_bytes: int = Field(default=104_857_600, ge=4096)
    max_files: int = Field(default=5, ge=1, le=1000)
    # Records waiting for the writer thread; beyond it records are dropped (and counted).
    queue_size: int = Field(default=10_000, ge=1, le=1_000_000)
    # Input fields (dotted paths) replaced by a hash; the raw value is also replaced wherever
    # else it occurs in the record (a claim the policy copied, a reason quoting it).
    hash_fields: tuple[str, ...] = ("subject.email",)
    # Input fields removed from the record altogether.
    erase_fields: tuple[str, ...] = ()
    # hmac: HMAC-SHA256 keyed with hash_key_file (recommended); salted: SHA-256 of hash_salt +
    # value. Either way equal values hash equally, so one user's decisions still correlate.
    hash_method: Literal["hmac", "salted"] = "hmac"
    hash_key_file: str = ""
    hash_salt: str = ""

    @field_validator("hash_fields", "erase_fields")
    @classmethod
    def _paths(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_input_path(item) for item in value)

    @model_validator(mode="after")
    def _a_secret_for_hashing(self) -> "DecisionLogConfig":
        # An unkeyed, unsalted hash of an email address is reversed by hashing a list of them.
        missing = self.missing_secret() if self.enabled and self.hash_fields else None
        if missing is not None:
            key, why = missing
            raise ValueError(f"{key}: {why}")  # "key: …": loading names decision_log.<key>
        return self

    def missing_secret(self) -> tuple[str, str] | None:
        """The key hash_method needs and why it falls short (None: its secret is set), whether
        or not the log is enabled: building a hasher checks it too (a script hashing addresses
        with the service's config, docs/policy-authors.md#who-is-hmac)."""
        if self.hash_method == "hmac" and not self.hash_key_file:
            return "hash_key_file", (
                "is empty: hash_method = 'hmac' needs a file holding the key (or set "
                "hash_method = 'salted' with a hash_salt of 16+ characters, or hash_fields = [])"
            )
        if self.hash_method == "salted" and len(self.hash_salt) < 16:
            return "hash_salt", "is too short: hash_method = 'salted' needs 16+ characters"
        return None


class ShadowConfig(StrictModel):
    """[policy.shadow]: a second policy evaluated beside the live one; never affects a token."""

    # The candidate policy: a folder (as [policy] path), or an OPA bundle as [policy]
    # bundle_file / bundle_url take it (embedded engine only). One of the three; all "" = off.
    path: str = ""
    bundle_file: str = ""
    bundle_url: str = ""
    # embedded: in process. opa: a second OPA server at opa_url (never the live one).
    engine: Literal["embedded", "opa"] = "embedded"
    opa_url: str = ""
    # "" = the live [policy] query.
    query: str = ""
    # Decisions waiting for shadow evaluation; when full, new ones are dropped (and counted).
    queue_size: int = Field(default=1000, ge=1, le=100_000)
    # A shadow evaluation not done in this time counts as a shadow error.
    timeout_seconds: float = Field(default=0.25, gt=0, le=10)
    # Share of the event loop's time shadow evaluation may take; it pauses accordingly after
    # each evaluation, so under load the queue fills and shadow work is dropped first.
    cpu_share: float = Field(default=0.2, gt=0, le=1)

    @model_validator(mode="after")
    def _one_source(self) -> "ShadowConfig":
        sources = [name for name in ("path", "bundle_file", "bundle_url") if getattr(self, name)]
        if len(sources) > 1:
            raise ValueError(f"set one of path, bundle_file, bundle_url, not {sources}")
        if (self.bundle_file or self.bundle_url) and self.engine != "embedded":
            raise ValueError('bundle_file and bundle_url need engine = "embedded"')
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.path or self.bundle_file or self.bundle_url)
