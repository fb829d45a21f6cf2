"""Settings: every section in one tree, read from SEKISHO_* variables over the TOML file's values,
and the rules that relate two sections."""

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from sekisho.config.gateway import GatewayConfig
from sekisho.config.keys import KeysConfig, TokensConfig
from sekisho.config.limits import CacheConfig, LimitsConfig
from sekisho.config.policy import PolicyConfig
from sekisho.config.protection import (
    ClientAuthLimitsConfig,
    GrpcLimitsConfig,
    HttpLimitsConfig,
    OverloadConfig,
)
from sekisho.config.server import CallerConfig, ServerConfig
from sekisho.config.status_list import StatusListConfig
from sekisho.config.telemetry import LoggingConfig, MetricsConfig, TracingConfig
from sekisho.config.token_endpoint import TokenEndpointConfig
from sekisho.config.trust import TrustConfig
from sekisho.policy.options import DecisionLogConfig


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
        # replayed to another worker would be accepted (RFC 7523 §3 item 7). Clients with a
        # secret only (client_secret_basic) send no assertion: nothing to replay.
        endpoint = self.token_endpoint
        assertions = any(client.jwks for client in endpoint.clients)
        if self.server.workers != 1 and assertions and not endpoint.replay_cache_url:
            raise ValueError(
                "server.workers != 1 with private_key_jwt clients (token_endpoint.clients with "
                "jwks) needs token_endpoint.replay_cache_url (a Redis shared by every worker "
                "and replica)"
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

    @model_validator(mode="after")
    def _trusted_gateways_can_work(self) -> "Settings":
        # At load, not only at start: `sekisho` commands that only load settings read them too.
        problem = self.trusted_gateways_problem()
        if problem:
            raise ValueError(problem)
        return self

    def trusted_gateways_problem(self) -> str:
        """What is wrong with [gateway] trusted_gateways ("" when nothing). Refused at load; the
        service's start asks again (service_listeners.gateway_trust) for settings copied without
        validation."""
        return (
            self._ignored_gateways() or self._unregistered_gateways() or self._anonymous_gateways()
        )

    def _ignored_gateways(self) -> str:
        # The list only restricts whose Checks may name the source principal: without
        # trust_source_principal it does nothing, and an operator who set it believes Checks
        # are restricted to those callers.
        if not self.gateway.trusted_gateways or self.gateway.trust_source_principal:
            return ""
        return (
            "gateway.trusted_gateways: does nothing while gateway.trust_source_principal is "
            "false (any registered caller's Check is served, as that caller): set "
            "trust_source_principal = true, or trusted_gateways = []"
        )

    def _unregistered_gateways(self) -> str:
        # Every id must be a registered [[callers]] id, or no Check could come from it (a typo
        # would refuse them all).
        known = {caller.id for caller in self.callers}
        unknown = sorted(set(self.gateway.trusted_gateways) - known)
        if not unknown:
            return ""
        listed = ", ".join(map(repr, unknown))
        # Name what would be accepted: the operator copies the gateway's id from here.
        registered = (
            f"registered: {', '.join(map(repr, sorted(known)))}"
            if known
            else "none is registered: add a [[callers]] entry with the gateway's certificate id"
        )
        return f"gateway.trusted_gateways: not a registered [[callers]] id: {listed} ({registered})"

    def _anonymous_gateways(self) -> str:
        # grpc has no optional client certificate (ServerConfig.client_auth_required): a listener
        # that asks for none sees every caller as anonymous (""), which no [[callers]] id is.
        if not self.gateway.trusted_gateways or self.server.client_auth_required:
            return ""
        why = (
            "server.require_client_auth = false"
            if self.server.require_client_auth is False
            else "loopback listeners without server.client_ca_file"
        )
        return (
            f"gateway.trusted_gateways: every Check would be refused: the gRPC listener asks for "
            f"no client certificate ({why}), so no caller is a trusted gateway; set "
            f"server.tls_cert_file, tls_key_file and client_ca_file with require_client_auth "
            f"unset or true, or trusted_gateways = []"
        )

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
