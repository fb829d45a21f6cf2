"""[gateway] and [[gateway.routes]]: the Envoy ext_authz adapter."""

import re

from pydantic import Field, field_validator

from sekisho.config.section import Section
from sekisho.profiles import ProfileName


class GatewayRouteConfig(Section):
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


class GatewayConfig(Section):
    """[gateway]: the Envoy ext_authz adapter (user token header, route table, token cache)."""

    token_header: str = "authorization"
    token_scheme: str = "Bearer"  # "" = the header value is the bare token
    tool_header: str = "x-mcp-tool"
    cache_max_entries: int = Field(default=10000, ge=0)
    cache_margin_seconds: int = Field(default=30, ge=0)
    trust_source_principal: bool = False
    # [[callers]] ids whose Checks may name the caller (attributes.source.principal) when
    # trust_source_principal is on; a Check from any other caller is refused. Empty = any caller
    # reaching grpc_listen may (warned at start: agents share that listener with the gateway).
    trusted_gateways: tuple[str, ...] = ()
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
