"""[policy]: the Rego engine, where policies live (a folder or an OPA bundle) and the shadow
engine ([policy.shadow], policy/options.py)."""

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from sekisho.config.section import Section, require_env_name
from sekisho.policy.options import ShadowConfig
from sekisho.urls import require_secure_url


class PolicyConfig(Section):
    """[policy]: the Rego engine and where policies live."""

    engine: Literal["embedded", "opa"] = "embedded"
    path: Path = Path("policies")
    query: str = "data.sekisho.exchange.decision"
    opa_url: str = "http://127.0.0.1:8181"
    watch: bool = True
    manage: bool = True
    opa_timeout_seconds: float = Field(default=0.5, gt=0, le=30)
    opa_check_interval_seconds: float = Field(default=2.0, gt=0, le=300)
    opa_binary: str = ""
    # engine = "embedded" (policy/wasm/): bounds on each Wasm evaluation and instance.
    eval_timeout_seconds: float = Field(default=0.1, gt=0, le=10)
    memory_limit_mb: int = Field(default=256, ge=2, le=4096)
    pool_size: int = Field(default=1, ge=1, le=64)
    compile_timeout_seconds: float = Field(default=60.0, gt=0, le=600)
    # engine = "embedded": keep each compiled policy.wasm here (policy/wasm/compile_cache.py);
    # unset = `opa build` at every start.
    compile_cache_dir: Path | None = None
    # engine = "embedded" from an OPA bundle instead of `path` (docs/operators.md "Policy
    # bundles"): a .tar.gz file, or a bundle server polled with ETags; optional signature key.
    bundle_file: Path | None = None
    bundle_url: str = ""
    bundle_poll_min_seconds: float = Field(default=60.0, gt=0, le=86400)
    bundle_poll_max_seconds: float = Field(default=120.0, gt=0, le=86400)
    bundle_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # The CA file trusted for the bundle server's certificate (bundle_url and shadow.bundle_url)
    # instead of the system trust store; nothing else trusts it. None = the system store.
    bundle_ca_file: Path | None = None
    bundle_verification_key: Path | None = None
    bundle_verification_alg: (
        Literal[
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
            "HS256",
            "HS384",
            "HS512",
        ]
        | None
    ) = None  # None: the one bundle_verification_key's type implies (signing.py)
    bundle_verification_scope: str = ""
    # OPA's own authentication (docs/operators.md "Securing OPA"): the name of the environment
    # variable holding the bearer token, and the CA that signed an https OPA's certificate.
    opa_token_env: str = ""
    opa_ca_file: Path | None = None
    shadow: ShadowConfig = ShadowConfig()

    @field_validator("opa_token_env")
    @classmethod
    def _token_env_name(cls, value: str) -> str:
        return require_env_name(value, "opa_token_env")

    @field_validator("bundle_url")
    @classmethod
    def _bundle_url(cls, value: str) -> str:
        # The policy travels over this connection: plaintext only on loopback.
        return require_secure_url(value, "bundle_url") if value else value

    @model_validator(mode="after")
    def _one_bundle_source(self) -> "PolicyConfig":
        if self.bundle_file is not None and self.bundle_url:
            raise ValueError("set bundle_file or bundle_url, not both")
        if self.uses_bundle and self.engine != "embedded":
            raise ValueError('bundle_file and bundle_url need engine = "embedded"')
        if self.bundle_poll_max_seconds < self.bundle_poll_min_seconds:
            raise ValueError("bundle_poll_max_seconds must be >= bundle_poll_min_seconds")
        if self.bundle_verification_key is not None and not self.uses_bundle:
            raise ValueError("bundle_verification_key needs bundle_file or bundle_url")
        if self.bundle_ca_file is not None and not (self.bundle_url or self.shadow.bundle_url):
            raise ValueError("bundle_ca_file needs bundle_url (or shadow.bundle_url)")
        return self

    @property
    def uses_bundle(self) -> bool:
        """Whether the embedded engine serves a bundle instead of compiling `path`."""
        return self.bundle_file is not None or bool(self.bundle_url)

    @field_validator("query")
    @classmethod
    def _data_ref(cls, value: str) -> str:
        parts = value.split(".")
        if len(parts) < 2 or parts[0] != "data" or not all(p.isidentifier() for p in parts):
            raise ValueError("query must be a data reference like data.sekisho.exchange.decision")
        return value

    @field_validator("opa_url")
    @classmethod
    def _opa_base_url(cls, value: str) -> str:
        # Decisions travel over this connection: plaintext only on loopback (a sidecar).
        require_secure_url(value, "opa_url")
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port out of range
        if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
            raise ValueError("opa_url must be scheme://host[:port] only (Sekisho adds /v1/…)")
        return value

    @property
    def reads_folder(self) -> bool:
        """Whether Sekisho itself reads `path` (embedded without a bundle, or OPA with manage =
        true)."""
        if self.engine == "embedded":
            return not self.uses_bundle
        return self.manage

    @model_validator(mode="after")
    def _shadow_engine(self) -> "PolicyConfig":
        shadow = self.shadow
        if shadow.query:
            self._data_ref(shadow.query)
        if shadow.bundle_url:
            self._bundle_url(shadow.bundle_url)
        if shadow.enabled and shadow.engine == "opa":
            # Publishing the shadow folder to the live OPA would replace the live policy.
            self._opa_base_url(shadow.opa_url)
            if shadow.opa_url.rstrip("/") == self.opa_url.rstrip("/"):
                raise ValueError("shadow.opa_url must name another OPA server than opa_url")
        return self

    def for_shadow(self) -> "PolicyConfig":
        """The settings the engine factory builds the shadow engine from: the live ones with
        the shadow's engine, source and query (a live bundle is never the shadow's)."""
        shadow = self.shadow
        bundle_file = Path(shadow.bundle_file) if shadow.bundle_file else None
        bundled = bundle_file is not None or bool(shadow.bundle_url)
        return self.model_copy(
            update={
                "engine": shadow.engine,
                "path": Path(shadow.path) if shadow.path else self.path,
                "bundle_file": bundle_file,
                "bundle_url": shadow.bundle_url,
                "bundle_verification_key": self.bundle_verification_key if bundled else None,
                "query": shadow.query or self.query,
                "opa_url": shadow.opa_url or self.opa_url,
                "shadow": ShadowConfig(),
            }
        )
