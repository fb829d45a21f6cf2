"""Configuration: one TOML file (docs/architecture.md §6) overridable by SEKISHO_* environment
variables.

Environment variables use `__` between levels: `SEKISHO_SERVER__ISSUER`, `SEKISHO_POLICY__ENGINE`.
Lists take JSON: `SEKISHO_TRUST__ISSUERS='[{"issuer": "…", "jwks_uri": "…"}]'`.
Unknown keys are errors, and every error names the offending key.

Callers import from this package root, never from its modules: which module holds a section is
the package's own organisation (one module per group of sections, `settings.py` for the rules
that relate two sections, `loading.py` and `paths.py` for reading a file). The modules import
each other directly, never this root.
"""

from sekisho.config.gateway import GatewayConfig, GatewayRouteConfig
from sekisho.config.keys import KeysConfig, TokensConfig
from sekisho.config.limits import CacheConfig, LimitsConfig
from sekisho.config.loading import load_settings
from sekisho.config.policy import PolicyConfig
from sekisho.config.protection import (
    ClientAuthLimitsConfig,
    GrpcLimitsConfig,
    HttpLimitsConfig,
    OverloadConfig,
)
from sekisho.config.server import CallerConfig, ServerConfig
from sekisho.config.settings import Settings
from sekisho.config.status_list import StatusListConfig
from sekisho.config.telemetry import LoggingConfig, MetricsConfig, TracingConfig
from sekisho.config.token_endpoint import ClientConfig, TokenEndpointConfig
from sekisho.config.trust import TrustConfig
from sekisho.identity.issuer_config import IssuerConfig

__all__ = [
    "CacheConfig",
    "CallerConfig",
    "ClientAuthLimitsConfig",
    "ClientConfig",
    "GatewayConfig",
    "GatewayRouteConfig",
    "GrpcLimitsConfig",
    "HttpLimitsConfig",
    "IssuerConfig",
    "KeysConfig",
    "LimitsConfig",
    "LoggingConfig",
    "MetricsConfig",
    "OverloadConfig",
    "PolicyConfig",
    "ServerConfig",
    "Settings",
    "StatusListConfig",
    "TokenEndpointConfig",
    "TokensConfig",
    "TracingConfig",
    "TrustConfig",
    "load_settings",
]
