"""Builds each of the service's components from Settings; nothing here starts or binds anything.

service.py (the composition root) wires them together; the CLI and tests build single ones.
"""

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from sekisho.attempts import AttemptGate
from sekisho.callers import CallerRegistry, RateLimit, RegisteredCaller
from sekisho.clock import Clock
from sekisho.config import Settings
from sekisho.exchange import TokenExchanger
from sekisho.gateway.authorizer import GatewayAuthorizer, TokenHeader
from sekisho.gateway.cache import GatewayTokenCache, Published, Revoked
from sekisho.gateway.routes import Route, RouteTable
from sekisho.http.client_auth import ClientAuthenticator, registered_client
from sekisho.http.secrets import SecretChecker
from sekisho.http.token import TOKEN_PATH, TokenEndpoint
from sekisho.identity.cache import CachingTokenVerifier
from sekisho.identity.role import InboundVerifier
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.loops import LoopFailures
from sekisho.metrics import Metrics
from sekisho.observability import Observability
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.engine import PolicyRuntime
from sekisho.policy.load_events import LIVE_LOAD_EVENTS, LoadEvents
from sekisho.policy_components import embedded_engine
from sekisho.profiles import BY_NAME
from sekisho.protection import (
    build_assertion_gate,
    build_attempt_gate,
)
from sekisho.redisauth import redis_auth, require_redis
from sekisho.verify.fetcher import JsonFetcher
from sekisho.verify.jwks import JwksCache
from sekisho.verify.replay import InMemoryReplayCache, RedisReplayCache, ReplayCache


def build_callers(settings: Settings) -> CallerRegistry:
    """The [[callers]] registry, requiring certificates when the listeners do."""
    return CallerRegistry(
        (
            RegisteredCaller(
                id=entry.id,
                client_ids=dict(entry.client_ids),
                rate=RateLimit(entry.rate_per_second, entry.burst)
                if entry.rate_per_second
                else None,
            )
            for entry in settings.callers
        ),
        require_client_auth=settings.server.client_auth_required,
    )


def trusted_issuers(
    settings: Settings, fetcher: JsonFetcher, clock: Clock, observability: Observability
) -> dict[str, TrustedIssuer]:
    """The [[trust.issuers]] by `iss`, each with its JWKS cache (not yet fetched)."""
    trust = settings.trust
    return {
        entry.issuer: TrustedIssuer(
            config=entry,
            jwks=JwksCache(
                entry.issuer,
                observability.fetcher_for(fetcher, entry.issuer),
                clock,
                jwks_uri=entry.jwks_uri,
                discovery_url=entry.discovery_url,
                min_refetch_interval=trust.jwks_refetch_min_interval_seconds,
                max_stale_seconds=trust.jwks_max_stale_seconds,
                unknown_kid_wait_seconds=trust.unknown_kid_wait_seconds,
            ),
        )
        for entry in trust.issuers
    }


def build_verifier(
    settings: Settings, issuers: Mapping[str, TrustedIssuer], clock: Clock
) -> TokenVerifier:
    """Inbound verification against the [[trust.issuers]]."""
    return TokenVerifier(
        issuers,
        clock,
        own_issuer=settings.server.issuer,
        leeway_seconds=settings.trust.leeway_seconds,
        max_token_bytes=settings.trust.max_token_bytes,
        max_act_depth=settings.trust.max_act_depth,
    )


def build_subject_cache(
    settings: Settings,
    verifier: TokenVerifier,
    issuers: dict[str, TrustedIssuer],
    clock: Clock,
    flushes: CachingPolicyEngine,
) -> CachingTokenVerifier:
    """The verified-subject cache, emptied with the decision cache at every policy reload."""
    cache = CachingTokenVerifier(
        verifier,
        issuers,
        clock,
        max_entries=settings.cache.subject_max_entries,
        max_seconds=settings.cache.subject_max_seconds,
    )
    flushes.on_flush(cache.clear)
    return cache


def build_policy_engine(
    settings: Settings,
    clock: Clock,
    failures: LoopFailures,
    events: LoadEvents = LIVE_LOAD_EVENTS,
) -> PolicyRuntime:
    """The configured policy engine, not yet started; `clock` times a bundle's status,
    `failures` counts its background loop's (OPA supervisor, bundle poller), `events` are the
    names its folder's loads are logged under (the live policy's, or the shadow's)."""
    policy = settings.policy
    if policy.engine == "opa":
        # Imported here: opa-python-client brings requests and urllib3, ~50 ms of every start
        # of the default (embedded) engine for nothing.
        from sekisho.policy.opa.api import OpaApi, opa_ssl_context, opa_token
        from sekisho.policy.opa.engine import OpaPolicyEngine

        return OpaPolicyEngine(
            OpaApi(
                policy.opa_url,
                policy.opa_timeout_seconds,
                token=opa_token(policy.opa_token_env),
                ssl_context=opa_ssl_context(policy.opa_ca_file),
            ),
            policy.path,
            policy.query,
            manage=policy.manage,
            timeout_seconds=policy.opa_timeout_seconds,
            check_interval_seconds=policy.opa_check_interval_seconds,
            failures=failures,
            events=events,
        )
    return embedded_engine(policy, Path.cwd(), clock, failures, events)


def build_gateway_authorizer(
    settings: Settings,
    exchanger: TokenExchanger,
    clock: Clock,
    metrics: Metrics | None = None,
    *,
    revoked: Revoked | None = None,
    published: Published | None = None,
    flushes: CachingPolicyEngine | None = None,
    subject_verifier: InboundVerifier | None = None,
) -> GatewayAuthorizer:
    """The ext_authz adapter from [gateway]: route table, token header and token cache;
    `subject_verifier` (the verified-subject cache) is asked again at every cache hit."""
    gateway = settings.gateway
    routes = RouteTable(
        Route(
            index=index,
            host=entry.host,
            path_prefix=entry.path_prefix,
            methods=entry.methods,
            audience=entry.audience,
            resources=entry.resources,
            scopes=entry.scopes,
            requested_token_type=BY_NAME[entry.token_profile].token_type_urn,
            name=entry.name,
        )
        for index, entry in enumerate(gateway.routes)
    )
    cache = GatewayTokenCache(
        clock,
        max_entries=gateway.cache_max_entries,
        margin_seconds=gateway.cache_margin_seconds,
        revoked=revoked,
        published=published,
    )
    if metrics is not None:
        metrics.watch_cache("gateway", cache)
    if flushes is not None:  # a policy or data reload empties it (issue 15 item 2)
        flushes.on_flush(cache.clear)
    return GatewayAuthorizer(
        exchanger,
        routes,
        cache,
        token_header=TokenHeader(gateway.token_header, gateway.token_scheme),
        tool_header=gateway.tool_header,
        route_from_envoy=gateway.route_from_envoy,
        subject_verifier=subject_verifier,
    )


def build_replay_cache(
    url: str, password_env: str = "", ca_file: Path | None = None
) -> tuple[ReplayCache, Callable[[], Awaitable[None]] | None]:
    """token_endpoint.replay_cache_url: "" = this process only; a Redis URL = shared by workers.

    Returns the cache and, for Redis, the coroutine that closes its connection pool.
    Raises: ConfigError (redis not installed, password variable named but empty).
    """
    if not url:
        return InMemoryReplayCache(), None
    require_redis("token_endpoint.replay_cache_url")
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, **redis_auth(password_env, ca_file))
    return RedisReplayCache(client), client.aclose


def build_token_endpoint(
    settings: Settings,
    exchanger: TokenExchanger,
    clock: Clock,
    replay_cache: ReplayCache | None = None,
    *,
    callers: CallerRegistry,
    request_id: contextvars.ContextVar[str] | None = None,
    secrets: SecretChecker | None = None,
    gate: AttemptGate | None = None,
) -> TokenEndpoint | None:
    """POST /oauth2/token when clients or callers are registered; None (no endpoint) otherwise.

    `secrets` (the argon2id pool; its owner closes it) and `gate` default to fresh ones.
    """
    registered = settings.token_endpoint.clients
    if not registered:
        if not settings.callers:
            return None
        # mTLS callers only (RFC 8705 tls_client_auth): no secret or key-based clients.
        return TokenEndpoint(exchanger, None, clock.now, callers=callers, request_id=request_id)
    issuer = settings.server.issuer
    clients = {c.id: registered_client(c.id, c.secret_hash, c.jwks) for c in registered}
    authenticator = ClientAuthenticator(
        clients,
        audiences=frozenset({issuer, issuer + TOKEN_PATH}),
        # In-process only with one worker: config requires replay_cache_url for several.
        replay_cache=replay_cache or InMemoryReplayCache(),
        gate=gate or build_attempt_gate(settings, clock),
        assertion_gate=build_assertion_gate(settings, clock),
        secrets=secrets or SecretChecker(settings.client_auth.hash_threads),
        leeway_seconds=settings.trust.leeway_seconds,
    )
    return TokenEndpoint(
        exchanger, authenticator, clock.now, callers=callers, request_id=request_id
    )
