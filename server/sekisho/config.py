"""Configuration: one TOML file (docs/architecture.md §6) overridable by SEKISHO_* environment
variables.

Environment variables use `__` between levels: `SEKISHO_SERVER__ISSUER`, `SEKISHO_POLICY__ENGINE`.
Lists take JSON: `SEKISHO_TRUST__ISSUERS='[{"issuer": "…", "jwks_uri": "…"}]'`.
Unknown keys are errors, and every error names the offending key.
"""

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sekisho.constants import SigningAlgorithm
from sekisho.errors import ConfigError
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.policy.options import DecisionLogConfig, ShadowConfig
from sekisho.profiles import ProfileName
from sekisho.protection_config import (
    ClientAuthLimitsConfig,
    GrpcLimitsConfig,
    HttpLimitsConfig,
    OverloadConfig,
)
from sekisho.urls import is_loopback_host, require_secure_url


def require_guarded_redis_url(url: str, what: str, *, env_setting: str) -> str:
    """redis:// only on loopback (or unix://); rediss:// elsewhere; never a password inline (it
    would be printed wherever the URL is: config dumps, logs, errors): `env_setting` names
    the environment variable holding it.

    Raises: ValueError naming `what` (never echoing the URL).
    """
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"{what} must be a redis://, rediss:// or unix:// URL")
    if parts.password or "password=" in parts.query:
        raise ValueError(
            f"{what} must not hold a password (config dumps, logs and errors print the URL): "
            f"put it in an environment variable and set {env_setting} to that variable's name"
        )
    if parts.scheme == "redis" and not is_loopback_host(parts.hostname or ""):
        raise ValueError(f"{what}: a Redis not on loopback needs TLS (rediss://)")
    return url


def require_env_name(value: str, what: str) -> str:
    """An environment variable's name (or ""). Raises: ValueError naming `what`."""
    if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(f"{what} must be the name of an environment variable")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """[server]: listeners and the issuer identity of minted tokens."""

    grpc_listen: str = "127.0.0.1:50051"
    http_listen: str = "127.0.0.1:8080"
    issuer: str = "http://127.0.0.1:8080"
    workers: int = Field(default=1, ge=0)
    # uvloop measured 7-20 % more exchanges per CPU than asyncio's loop (bench/results).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    shutdown_grace_seconds: float = Field(default=10.0, gt=0)
    # TLS on both listeners (docs/operators.md "TLS, mTLS and callers"); paths relative to the
    # config file.
    # Trust http/redis dependencies on loopback although a listener is not on loopback: only
    # when that loopback is private (a pod's sidecar). Logged at start (exposure.py).
    allow_loopback_dependencies: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    client_ca_file: Path | None = None
    # None = computed: required whenever a listener is not on loopback (`client_auth_required`).
    require_client_auth: bool | None = None
    # Plaintext on a non-loopback listener, for a service-mesh sidecar that terminates mTLS.
    insecure_plaintext: bool = False
    # Token bucket for callers without their own [[callers]] rate (0 = unlimited); anonymous
    # callers have one each per network address (not per connection), not one shared.
    caller_rate_per_second: float = Field(default=0.0, ge=0)
    caller_burst: int = Field(default=0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _retired_overload_keys(cls, data: Any) -> Any:
        # The binary in-flight/CPU gate was replaced by [overload] (issue 14): say so by name.
        for key in ("max_in_flight", "max_cpu_fraction"):
            if isinstance(data, dict) and key in data:
                raise ValueError(f"server.{key} was replaced by the [overload] section")
        return data

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        require_secure_url(value, "issuer")
        if value.endswith("/"):
            raise ValueError("issuer must not end with '/' (RFC 8414 §2 issuer identifier)")
        return value

    @property
    def worker_count(self) -> int:
        """`workers`, with 0 meaning one per CPU this process may run on."""
        return self.workers or len(os.sched_getaffinity(0))

    @model_validator(mode="after")
    def _fixed_ports_for_workers(self) -> "ServerConfig":
        # Workers share the listeners through SO_REUSEPORT: each binds the same port itself,
        # so "any free port" (0) would give every worker a different one.
        if self.workers != 1:
            for key in ("grpc_listen", "http_listen"):
                if getattr(self, key).rpartition(":")[2] == "0":
                    raise ValueError(f"server.{key} needs a fixed port when workers != 1")
        return self

    @property
    def tls_enabled(self) -> bool:
        """Both listeners terminate TLS with `tls_cert_file` / `tls_key_file`."""
        return self.tls_cert_file is not None

    @property
    def on_loopback(self) -> bool:
        """Both listeners bind a loopback address (nothing else on the network can connect)."""
        return all(
            is_loopback_host(listen.rpartition(":")[0].strip("[]"))
            for listen in (self.grpc_listen, self.http_listen)
        )

    @property
    def client_auth_required(self) -> bool:
        """`require_client_auth`, defaulting to true whenever a listener is not on loopback."""
        if self.require_client_auth is None:
            return not self.on_loopback
        return self.require_client_auth

    @model_validator(mode="after")
    def _transport_security(self) -> "ServerConfig":
        # Caller identity and minted tokens cross these listeners: plaintext beyond loopback only
        # with the explicit mesh opt-out, and mTLS by default there (issue 7 item 1).
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("set both server.tls_cert_file and server.tls_key_file, or neither")
        if self.tls_enabled and self.insecure_plaintext:
            raise ValueError("server.insecure_plaintext contradicts server.tls_cert_file")
        if self.client_ca_file is not None and not self.tls_enabled:
            raise ValueError("server.client_ca_file needs server.tls_cert_file and tls_key_file")
        if not self.on_loopback and not self.tls_enabled and not self.insecure_plaintext:
            raise ValueError(
                "a listener is not on loopback: set server.tls_cert_file and server.tls_key_file "
                "(or server.insecure_plaintext = true behind an mTLS-terminating sidecar)"
            )
        if self.client_auth_required and not self.tls_enabled:
            raise ValueError(
                "server.require_client_auth needs server.tls_cert_file, tls_key_file and "
                "client_ca_file (behind a sidecar: set server.require_client_auth = false)"
            )
        if self.client_auth_required and self.client_ca_file is None:
            raise ValueError("server.require_client_auth needs server.client_ca_file")
        return self


class TrustConfig(_Strict):
    """[trust]: inbound token verification."""

    issuers: tuple[IssuerConfig, ...] = ()
    leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwks_cache_seconds: int = Field(default=300, ge=10)
    jwks_refetch_min_interval_seconds: float = Field(default=30.0, ge=0)
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


class PolicyConfig(_Strict):
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
    bundle_verification_alg: Literal[
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
    ] = "RS256"
    bundle_verification_scope: str = ""
    # OPA's own authentication (docs/operators.md "Securing OPA"): the name of the environment
    # variable holding the bearer token, and the CA that signed an https OPA's certificate.
    opa_token_env: str = ""
    opa_ca_file: Path | None = None
    shadow: ShadowConfig = ShadowConfig()

    @field_validator("opa_token_env")
    @classmethod
    def _token_env_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("opa_token_env must be the name of an environment variable")
        return value

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


class KeysConfig(_Strict):
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
        if value and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("passphrase_env must be the name of an environment variable")
        return value

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


class TokensConfig(_Strict):
    """[tokens]: lifetime of minted tokens and caching of the published JWKS."""

    max_lifetime_seconds: int = Field(default=300, ge=10, le=3600)
    jwks_max_age_seconds: int = Field(default=300, ge=0, le=86400)


class GatewayRouteConfig(_Strict):
    """One [[gateway.routes]] entry: which downstream a request through the gateway goes to."""

    # The name Envoy's per-route ext_authz config sends as context_extensions["sekisho_route"]
    # (docs/integrators.md "Gateways: Envoy ext_authz"): with it, the route Envoy chose decides,
    # nothing is re-matched.
    name: str = ""
    # The :authority exactly as Envoy's virtual-host matching sees it by default (lower case, a
    # port only if the request names one, a trailing dot kept); "" matches any host.
    host: str = ""
    path_prefix: str = "/"
    methods: tuple[str, ...] = ()  # empty = any method
    audience: str
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    token_profile: ProfileName = "access_token"

    @field_validator("path_prefix")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("path_prefix must start with '/'")
        return value

    @field_validator("host")
    @classmethod
    def _lower_host(cls, value: str) -> str:
        return value.lower()

    @field_validator("methods")
    @classmethod
    def _upper_methods(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(method.upper() for method in value)


class GatewayConfig(_Strict):
    """[gateway]: the Envoy ext_authz adapter (user token header, route table, token cache)."""

    token_header: str = "authorization"
    token_scheme: str = "Bearer"  # "" = the header value is the bare token
    tool_header: str = "x-mcp-tool"
    cache_max_entries: int = Field(default=10000, ge=0)
    cache_margin_seconds: int = Field(default=30, ge=0)
    trust_source_principal: bool = False
    # true = every Check must name its route (context_extensions["sekisho_route"]); a Check
    # without one, or naming no [[gateway.routes]] entry, is refused: no host/path re-matching.
    route_from_envoy: bool = False
    routes: tuple[GatewayRouteConfig, ...] = ()

    @field_validator("routes")
    @classmethod
    def _unique_names(cls, value: tuple[GatewayRouteConfig, ...]) -> tuple[GatewayRouteConfig, ...]:
        names = [route.name for route in value if route.name]
        if len(names) != len(set(names)):
            raise ValueError("route names must be unique")
        return value

    @field_validator("token_header", "tool_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
            raise ValueError("must be an HTTP header name (RFC 9110 token)")
        return value.lower()


class ClientConfig(_Strict):
    """One [[token_endpoint.clients]] entry: a caller of POST /oauth2/token (RFC 6749 §2.3).

    `secret_hash` (an argon2id PHC string from `sekisho clients hash-secret`) enables
    client_secret_basic; `jwks` (an inline JWK Set of public keys) enables private_key_jwt
    (RFC 7523 §2.2). The plain secret is never stored.
    """

    id: str
    secret_hash: str = ""
    jwks: str = ""

    @field_validator("id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        # RFC 6749 §2.3.1: the id travels form-urlencoded in HTTP Basic, so no ':' and no controls.
        if not re.fullmatch(r"[\x21-\x39\x3b-\x7e]{1,128}", value):
            raise ValueError("id must be 1-128 printable ASCII characters without ':' or spaces")
        return value

    @field_validator("secret_hash")
    @classmethod
    def _argon2id(cls, value: str) -> str:
        if value and not value.startswith("$argon2id$"):
            raise ValueError("secret_hash must be an argon2id hash (sekisho clients hash-secret)")
        return value

    @field_validator("jwks")
    @classmethod
    def _public_jwks(cls, value: str) -> str:
        if not value:
            return value
        import json

        try:
            keys = json.loads(value)["keys"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("jwks must be a JSON JWK Set") from exc
        if not keys or any(not isinstance(k, dict) or "d" in k or not k.get("kid") for k in keys):
            raise ValueError("jwks must hold public keys only, each with a kid")
        return value

    @model_validator(mode="after")
    def _a_credential(self) -> "ClientConfig":
        if not self.secret_hash and not self.jwks:
            raise ValueError("set secret_hash and/or jwks: a client needs a credential")
        return self


class TokenEndpointConfig(_Strict):
    """[token_endpoint]: POST /oauth2/token (RFC 8693 over HTTP), served when clients exist."""

    clients: tuple[ClientConfig, ...] = ()
    # Where client-assertion jti values are remembered: "" = this process only (one worker);
    # "redis://host:port/db" = shared by every worker and replica (sekisho.verify.RedisReplayCache).
    # Beyond loopback: rediss:// (TLS), with an ACL user in the URL (rediss://sekisho@host/0)
    # and its password in the environment variable `replay_cache_password_env`.
    replay_cache_url: str = ""
    replay_cache_password_env: str = ""
    replay_cache_ca_file: Path | None = None

    @field_validator("replay_cache_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return require_guarded_redis_url(
            value, "replay_cache_url", env_setting="token_endpoint.replay_cache_password_env"
        )

    @field_validator("replay_cache_password_env")
    @classmethod
    def _password_env(cls, value: str) -> str:
        return require_env_name(value, "replay_cache_password_env")

    @field_validator("clients")
    @classmethod
    def _unique_clients(cls, value: tuple[ClientConfig, ...]) -> tuple[ClientConfig, ...]:
        ids = [client.id for client in value]
        if len(ids) != len(set(ids)):
            raise ValueError("each client id may appear only once")
        return value


class LoggingConfig(_Strict):
    """[logging]: structured logs on stderr."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class MetricsConfig(_Strict):
    """[metrics]: Prometheus metrics on GET /metrics of a separate admin listener."""

    enabled: bool = True
    # The admin listener serving GET /metrics (plain HTTP, never on the public HTTP listener, so an
    # anonymous caller learns nothing from it); loopback by default.
    listen: str = "127.0.0.1:9464"
    # Distinct audience label values before further audiences are counted as "other".
    max_audiences: int = Field(default=50, ge=1, le=1000)
    # Audiences labelled by name from the start; others only once a token was granted for them.
    audiences: tuple[str, ...] = ()

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError("must be host:port")
        return value


class TracingConfig(_Strict):
    """[tracing]: OpenTelemetry spans per exchange stage, exported over OTLP (off by default)."""

    enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4317"
    service_name: str = "sekisho"
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class CacheConfig(_Strict):
    """[cache]: the hot-path caches (verified subject tokens, policy decisions); 0 disables."""

    subject_max_entries: int = Field(default=10000, ge=0)
    # A verified token is reused until its exp, but never longer than this after verification.
    subject_max_seconds: int = Field(default=300, ge=1, le=3600)
    decision_max_entries: int = Field(default=10000, ge=0)


class CallerConfig(_Strict):
    """One [[callers]] entry: a workload that calls Sekisho, known by its client certificate.

    `id` is the certificate's SPIFFE ID (its one `spiffe://` URI SAN) or, without one, its subject
    CN. `client_ids` maps a downstream audience to the caller's client id there
    (docs/architecture.md §4 client_id rule). `rate_per_second` / `burst` override the server's
    default token bucket.
    """

    id: str
    client_ids: dict[str, str] = Field(default_factory=dict)
    rate_per_second: float = Field(default=0.0, ge=0)
    burst: int = Field(default=0, ge=0)

    @field_validator("id")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        if not value or len(value) > 2048 or not value.isprintable():
            raise ValueError("id must be 1-2048 printable characters (a SPIFFE ID or a CN)")
        if value.startswith("spiffe://") and not re.fullmatch(r"spiffe://[^/?#]+/[^?#]*", value):
            raise ValueError("id looks like a SPIFFE ID but is not spiffe://trust-domain/path")
        return value

    @model_validator(mode="after")
    def _burst_with_rate(self) -> "CallerConfig":
        if self.rate_per_second and self.burst < 1:
            raise ValueError("rate_per_second needs burst >= 1")
        return self


class LimitsConfig(_Strict):
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


class StatusListConfig(_Strict):
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


class Settings(BaseSettings):
    """The whole configuration."""

    # hide_input_in_errors: a refused value (a URL with a password, say) is never echoed by the
    # ValidationError chained to ConfigError, which a traceback would print.
    model_config = SettingsConfigDict(
        env_prefix="SEKISHO_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        hide_input_in_errors=True,
    )

    server: ServerConfig = ServerConfig()
    trust: TrustConfig = TrustConfig()
    policy: PolicyConfig = PolicyConfig()
    keys: KeysConfig = KeysConfig()
    tokens: TokensConfig = TokensConfig()
    logging: LoggingConfig = LoggingConfig()
    gateway: GatewayConfig = GatewayConfig()
    token_endpoint: TokenEndpointConfig = TokenEndpointConfig()
    callers: tuple[CallerConfig, ...] = ()
    limits: LimitsConfig = LimitsConfig()
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()
    cache: CacheConfig = CacheConfig()
    status_list: StatusListConfig = StatusListConfig()
    decision_log: DecisionLogConfig = DecisionLogConfig()
    http: HttpLimitsConfig = HttpLimitsConfig()
    grpc: GrpcLimitsConfig = GrpcLimitsConfig()
    client_auth: ClientAuthLimitsConfig = ClientAuthLimitsConfig()
    overload: OverloadConfig = OverloadConfig()

    @field_validator("callers")
    @classmethod
    def _unique_callers(cls, value: tuple[CallerConfig, ...]) -> tuple[CallerConfig, ...]:
        ids = [caller.id for caller in value]
        if len(ids) != len(set(ids)):
            raise ValueError("each caller id may appear only once")
        return value

    @model_validator(mode="after")
    def _message_fits_tokens(self) -> "Settings":
        # A request with a subject and an actor token at the size limit must still be readable,
        # or one limit would refuse it with a worse error than the other's.
        needed = 2 * self.trust.max_token_bytes
        if self.limits.grpc_max_message_bytes < needed:
            raise ValueError(
                f"limits.grpc_max_message_bytes must be at least 2 x trust.max_token_bytes "
                f"({needed})"
            )
        return self

    @model_validator(mode="after")
    def _shared_replay_cache_for_workers(self) -> "Settings":
        # An in-process replay cache sees only its own worker's assertions: a client assertion
        # replayed to another worker would be accepted (RFC 7523 §3 item 7).
        endpoint = self.token_endpoint
        if self.server.workers != 1 and endpoint.clients and not endpoint.replay_cache_url:
            raise ValueError(
                "server.workers != 1 with token_endpoint.clients needs "
                "token_endpoint.replay_cache_url (a Redis shared by every worker)"
            )
        return self

    @model_validator(mode="after")
    def _never_trust_ourselves(self) -> "Settings":
        # A token Sekisho minted must never come back in as a subject token.
        for form in (form for entry in self.trust.issuers for form in entry.accepted_issuers):
            if form.rstrip("/") == self.server.issuer.rstrip("/"):
                raise ValueError("trust.issuers must not contain server.issuer (Sekisho itself)")
        return self

    @model_validator(mode="after")
    def _rotation_after_prepublication(self) -> "Settings":
        # A key must be published for 2 x jwks max-age before it signs; a shorter rotation
        # period could never be honoured.
        period, max_age = self.keys.rotation_period, self.tokens.jwks_max_age_seconds
        if period and period < 2 * max_age:
            raise ValueError(
                f"keys.rotation_period ({period} s) must be at least 2 x "
                f"tokens.jwks_max_age_seconds ({2 * max_age} s)"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for item in err.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{source}: config key '{key}': {item['msg']}")
    return "\n".join(lines)


def _resolve_paths(settings: Settings, base: Path) -> Settings:
    """Make relative paths relative to the config file's folder (docs/architecture.md §6)."""
    opa_binary = settings.policy.opa_binary
    if "/" in opa_binary:  # a path, not a name looked up on PATH
        opa_binary = os.path.normpath(base / opa_binary)  # keep symlinks: bin/opa may be one
    policy_update: dict[str, Any] = {
        "path": (base / settings.policy.path).resolve(),
        "opa_binary": opa_binary,
    }
    for name in (
        "opa_ca_file",
        "bundle_file",
        "bundle_ca_file",
        "bundle_verification_key",
        "compile_cache_dir",
    ):
        if (value := getattr(settings.policy, name)) is not None:
            policy_update[name] = (base / value).resolve()
    policy = settings.policy.model_copy(update=policy_update)
    keys_update: dict[str, Any] = {"dir": (base / settings.keys.dir).resolve()}
    if settings.keys.audit_log:
        keys_update["audit_log"] = str((base / settings.keys.audit_log).resolve())
    keys = settings.keys.model_copy(update=keys_update)
    tls_update = {
        name: (base / path).resolve()
        for name in ("tls_cert_file", "tls_key_file", "client_ca_file")
        if (path := getattr(settings.server, name)) is not None
    }
    server = settings.server.model_copy(update=tls_update)
    status_update: dict[str, Any] = {"path": (base / settings.status_list.path).resolve()}
    if settings.status_list.audit_log:
        status_update["audit_log"] = str((base / settings.status_list.audit_log).resolve())
    if settings.status_list.redis_ca_file is not None:
        status_update["redis_ca_file"] = (base / settings.status_list.redis_ca_file).resolve()
    status_list = settings.status_list.model_copy(update=status_update)
    policy, decision_log = _resolve_decision_paths(policy, settings.decision_log, base)
    endpoint = settings.token_endpoint
    if endpoint.replay_cache_ca_file is not None:
        ca_file = (base / endpoint.replay_cache_ca_file).resolve()
        endpoint = endpoint.model_copy(update={"replay_cache_ca_file": ca_file})
    return settings.model_copy(
        update={
            "token_endpoint": endpoint,
            "policy": policy,
            "keys": keys,
            "server": server,
            "status_list": status_list,
            "decision_log": decision_log,
        }
    )


def _resolve_decision_paths(
    policy: PolicyConfig, decision_log: DecisionLogConfig, base: Path
) -> tuple[PolicyConfig, DecisionLogConfig]:
    """[policy.shadow] path and the [decision_log] files, relative to the config's folder."""
    shadow = policy.shadow
    shadow = shadow.model_copy(
        update={
            name: str((base / value).resolve())
            for name in ("path", "bundle_file")
            if (value := getattr(shadow, name))
        }
    )
    update: dict[str, Any] = {"path": (base / decision_log.path).resolve()}
    if decision_log.hash_key_file:
        update["hash_key_file"] = str((base / decision_log.hash_key_file).resolve())
    return policy.model_copy(update={"shadow": shadow}), decision_log.model_copy(update=update)


def load_settings(path: Path | None) -> Settings:
    """Load and validate the TOML file at `path` (or defaults), then apply SEKISHO_* overrides.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key or invalid value (the key is named).
    """
    data: dict[str, Any] = {}
    base = Path.cwd()
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
        base = path.resolve().parent
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, f"{source} (or a SEKISHO_* variable)")) from exc
    return _resolve_paths(settings, base)
