"""The composition root: builds every component from Settings and runs gRPC + HTTP on one loop."""

import asyncio
import contextlib
import contextvars
import gc
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from sekisho.admission import Admission
from sekisho.attempts import AttemptGate
from sekisho.audit import AuditLog
from sekisho.callers import CallerRegistry, RateLimit, RegisteredCaller
from sekisho.clock import Clock, SystemClock
from sekisho.config import Settings
from sekisho.decision_observers import DecisionObservers, build_decision_observers
from sekisho.errors import ConfigError
from sekisho.exchange import TokenExchanger
from sekisho.exposure import check_exposure
from sekisho.gateway.authorizer import GatewayAuthorizer, TokenHeader
from sekisho.gateway.cache import GatewayTokenCache, Revoked
from sekisho.gateway.routes import PROFILE_TOKEN_TYPES, Route, RouteTable
from sekisho.http.app import create_http_app, create_metrics_app
from sekisho.http.client_auth import ClientAuthenticator, registered_client
from sekisho.http.guard import ConnectionGuard, GuardedSite, handler_args
from sekisho.http.secrets import SecretChecker
from sekisho.http.token import TOKEN_PATH, TokenEndpoint
from sekisho.identity.cache import CachingTokenVerifier
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.keystores import build_key_manager, build_keystore
from sekisho.metrics import Metrics
from sekisho.minting.minter import TokenMinter
from sekisho.observability import Observability, build_observability
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.engine import PolicyRuntime
from sekisho.policy.wasm.factory import embedded_engine
from sekisho.protection import (
    build_admission,
    build_assertion_gate,
    build_attempt_gate,
    build_connection_guard,
    grpc_options,
    request_limits,
)
from sekisho.redisauth import redis_auth
from sekisho.reload import poll_forever, retry_with_backoff, watch_directory
from sekisho.rpc.ext_authz import ExtAuthzServicer
from sekisho.rpc.server import GrpcServer, create_grpc_server
from sekisho.rpc.servicer import TokenExchangeServicer
from sekisho.shutdown import BackgroundTasks, Listeners
from sekisho.signing.keyring import Keyring
from sekisho.signing.manager import ManagedKeyStore
from sekisho.signing.rotation import AutoRotator, check_interval, rotate_forever
from sekisho.status.runtime import StatusRuntime, build_status_runtime
from sekisho.tls import TlsMaterial, http_ssl_context, load_tls_material
from sekisho.verify.fetcher import HttpJsonFetcher, JsonFetcher
from sekisho.verify.jwks import JwksCache
from sekisho.verify.replay import InMemoryReplayCache, RedisReplayCache, ReplayCache

log = logging.getLogger(__name__)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


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


@dataclass
class Service:
    """A running Sekisho: both listeners and the background tasks. Every component's close is on
    `stack`, in shutdown order (shutdown.py); stop() is closing it."""

    grpc: GrpcServer
    http_port: int
    stack: contextlib.AsyncExitStack
    listeners: Listeners
    tasks: BackgroundTasks
    metrics_port: int = 0  # the admin listener's port ([metrics] listen); 0 = metrics off
    policy: PolicyRuntime | None = None
    # The hot-path caches (hits / misses / len for metrics); policy is a CachingPolicyEngine.
    subject_cache: CachingTokenVerifier | None = None
    observability: Observability | None = None
    # The decision log and shadow policy ([decision_log], [policy.shadow]), when configured.
    observers: DecisionObservers | None = None
    http_guard: ConnectionGuard | None = None
    # What SIGHUP reloads (the keyring, the policy folder).
    reloaders: list[Callable[[], Awaitable[object]]] = field(default_factory=list)

    async def reload(self) -> None:
        """SIGHUP: reload keys and policy now; each logs its own success or failure."""
        log.info("reload_requested", extra={"reloaders": len(self.reloaders)})
        for reload in self.reloaders:
            try:
                await reload()
            except Exception:  # a signal-driven background action: log and go on
                log.exception("reload_failed", extra={"what": "sighup"})

    async def stop(self, grace: float) -> None:
        """Drain in-flight RPCs for up to `grace` seconds, then close everything."""
        self.listeners.grace = grace
        await self.stack.aclose()


@dataclass
class _Core:
    """What the listeners share, built (keys and policy loaded) before any of them binds."""

    settings: Settings
    clock: Clock
    request_id: contextvars.ContextVar[str]
    observability: Observability
    store: ManagedKeyStore
    keyring: Keyring
    policy: CachingPolicyEngine
    observers: DecisionObservers
    issuers: dict[str, TrustedIssuer]
    subject_cache: CachingTokenVerifier
    status: StatusRuntime | None
    callers: CallerRegistry

    def ready(self) -> bool:
        return self.keyring.loaded and self.policy.ready


def _trusted_issuers(
    settings: Settings, fetcher: JsonFetcher, clock: Clock, observability: Observability
) -> dict[str, TrustedIssuer]:
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
            ),
        )
        for entry in trust.issuers
    }


def _key_tasks(
    settings: Settings, store: ManagedKeyStore, keyring: Keyring, clock: Clock
) -> list[Coroutine[None, None, None]]:
    """Pick up keystore changes (watch the folder, or poll KMS) and rotate on schedule."""
    keys = settings.keys
    tasks: list[Coroutine[None, None, None]] = []
    if keys.watch and keys.backend == "kms":
        tasks.append(poll_forever(keyring.refresh, keys.poll_seconds, "keys"))
    elif keys.watch:
        tasks.append(watch_directory(keys.dir, keyring.refresh, "keys"))
    # A failed reload (unreadable key file, KMS Decrypt error) is retried with backoff.
    tasks.append(
        retry_with_backoff(
            keyring.refresh, lambda: keyring.degraded, "keys", max_seconds=keys.retry_max_seconds
        )
    )
    if keys.rotation_period:
        rotator = AutoRotator(build_key_manager(settings, store, clock), keyring.refresh)
        tasks.append(rotate_forever(rotator, check_interval(keys.rotation_period)))
    return tasks


def _policy_watch(
    settings: Settings, policy: PolicyRuntime, what: str = "policy"
) -> Coroutine[None, None, None] | None:
    """Reload on changes of the policy folder, or of a bundle file's folder."""
    if settings.policy.watch and settings.policy.reads_folder:
        return watch_directory(settings.policy.path, policy.folder_changed, what)
    if settings.policy.watch and settings.policy.bundle_file is not None:
        bundle_folder = settings.policy.bundle_file.parent
        return watch_directory(bundle_folder, policy.folder_changed, f"{what} bundle")
    return None


def build_policy_engine(settings: Settings) -> PolicyRuntime:
    """The configured policy engine, not yet started."""
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
        )
    return embedded_engine(policy, Path.cwd())


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


async def _serve_metrics(core: _Core, listeners: Listeners, reuse_port: bool) -> int:
    """GET /metrics on its own admin listener ([metrics] listen), never the public one; returns
    its port, 0 when metrics are off."""
    observability, clock = core.observability, core.clock
    if observability.metrics is None:
        return 0
    runner = web.AppRunner(
        create_metrics_app(lambda: observability.scrape(clock.now())),
        access_log=None,
        handle_signals=False,
    )
    await runner.setup()
    listeners.http.append(runner)
    host, port = _split_listen(core.settings.metrics.listen)
    site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
    await site.start()
    return int(runner.addresses[0][1])


async def start_policy(
    settings: Settings, clock: Clock, observability: Observability
) -> tuple[CachingPolicyEngine, DecisionObservers]:
    """The live engine behind the decision cache, started, and what observes its decisions
    ([decision_log], [policy.shadow]). Raises: PolicyLoadError, ConfigError."""
    policy = CachingPolicyEngine(
        build_policy_engine(settings), clock, max_entries=settings.cache.decision_max_entries
    )
    await policy.start()
    observers = await build_decision_observers(
        settings,
        policy,
        clock,
        observability.metrics,
        build_engine=build_policy_engine,
        watch=lambda shadow_settings, engine: _policy_watch(shadow_settings, engine, "shadow"),
        several_workers=settings.server.workers != 1,
    )
    return policy, observers


def build_gateway_authorizer(
    settings: Settings,
    exchanger: TokenExchanger,
    clock: Clock,
    metrics: Metrics | None = None,
    *,
    revoked: Revoked | None = None,
    flushes: CachingPolicyEngine | None = None,
) -> GatewayAuthorizer:
    """The ext_authz adapter from [gateway]: route table, token header and token cache."""
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
            requested_token_type=PROFILE_TOKEN_TYPES[entry.token_profile],
            name=entry.name,
        )
        for index, entry in enumerate(gateway.routes)
    )
    cache = GatewayTokenCache(
        clock,
        max_entries=gateway.cache_max_entries,
        margin_seconds=gateway.cache_margin_seconds,
        revoked=revoked,
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
        limits=request_limits(settings),
        route_from_envoy=gateway.route_from_envoy,
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
    try:
        import redis.asyncio
    except ImportError as exc:
        raise ConfigError(
            "config key 'token_endpoint.replay_cache_url': the redis package is not installed "
            "(pip install 'sekisho[redis]')"
        ) from exc
    client = redis.asyncio.Redis.from_url(url, **redis_auth(password_env, ca_file))
    return RedisReplayCache(client), client.aclose


def build_token_endpoint(
    settings: Settings,
    exchanger: TokenExchanger,
    clock: Clock,
    replay_cache: ReplayCache | None = None,
    *,
    callers: CallerRegistry | None = None,
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


async def _serve_http(
    app: web.Application,
    listen: str,
    guard: ConnectionGuard,
    tls: TlsMaterial | None,
    reuse_port: bool,
) -> tuple[web.AppRunner, int]:
    """Bind the HTTP listener behind the connection guard ([http]); returns the bound port."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **handler_args(guard.limits))
    await runner.setup()
    host, port = _split_listen(listen)
    site = GuardedSite(
        runner,
        host,
        port,
        guard,
        reuse_port=reuse_port or None,
        ssl_context=http_ssl_context(tls) if tls else None,
    )
    await site.start()
    return runner, site.port


async def _refresh_forever(cache: JwksCache, interval: float) -> None:
    while True:
        try:
            await cache.refresh()
        except Exception:  # a background loop: log and go on
            log.exception("jwks_refresh_crashed")
        await asyncio.sleep(cache.next_refresh_in(interval))


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


def _idp_fetcher(
    settings: Settings, given: JsonFetcher | None, started: contextlib.AsyncExitStack
) -> JsonFetcher:
    """The fetcher for IdP discovery and JWKS: `given` (tests), else one of our own to close."""
    if given is not None:
        return given
    own = HttpJsonFetcher(settings.trust.http_timeout_seconds)
    started.push_async_callback(own.close)
    return own


def _client_auth_support(
    settings: Settings, started: contextlib.AsyncExitStack
) -> tuple[ReplayCache, SecretChecker]:
    """The token endpoint's replay cache and secret checker, their closes on `started`."""
    endpoint = settings.token_endpoint
    replay_cache, close_replay_cache = build_replay_cache(
        endpoint.replay_cache_url, endpoint.replay_cache_password_env, endpoint.replay_cache_ca_file
    )
    if close_replay_cache is not None:
        started.push_async_callback(close_replay_cache)
    secrets = SecretChecker(settings.client_auth.hash_threads)
    started.callback(secrets.close)
    return replay_cache, secrets


async def start_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    fetcher: JsonFetcher | None = None,
    request_id: contextvars.ContextVar[str] | None = None,
    reuse_port: bool = False,
) -> Service:
    """Load keys and policy (refusing to start if either is broken), then bind both listeners.

    `reuse_port` (several workers) binds both listeners with SO_REUSEPORT. A start that fails
    part way closes everything it had started (listeners, tasks, clients) before raising.

    Raises: ConfigError, KeyStoreError, PolicyLoadError, OSError (bind).
    """
    stack = contextlib.AsyncExitStack()
    try:
        return await _start(
            settings,
            stack,
            clock=clock or SystemClock(),
            fetcher=fetcher,
            request_id=request_id or contextvars.ContextVar("request_id", default=""),
            reuse_port=reuse_port,
        )
    except BaseException:
        await stack.aclose()
        raise


async def _start(
    settings: Settings,
    started: contextlib.AsyncExitStack,
    *,
    clock: Clock,
    fetcher: JsonFetcher | None,
    request_id: contextvars.ContextVar[str],
    reuse_port: bool,
) -> Service:
    """start_service's steps. Each component's close goes on `started` as it starts, in
    shutdown order (shutdown.py): stores and clients, then background loops, then listeners."""
    check_exposure(settings)
    observability = build_observability(settings)
    started.callback(observability.close)
    core = await _start_core(
        settings, started, clock, observability, fetcher=fetcher, request_id=request_id
    )
    exchanger = _build_exchanger(core)
    guard = build_connection_guard(settings)
    app = _public_app(core, exchanger, guard, started)
    service = await _serve(core, exchanger, app, guard, started, reuse_port=reuse_port)
    await _launch(core, service)
    service.listeners.readiness = asyncio.create_task(service.grpc.follow_readiness(core.ready))
    _freeze_start_up_objects()
    log.info(
        "service_started",
        extra={
            "grpc_port": service.grpc.port,
            "http_port": service.http_port,
            "issuer": settings.server.issuer,
        },
    )
    return service


def _freeze_start_up_objects() -> None:
    """Move what start-up built (modules, keys, policy, grpc) out of the cyclic collector's
    reach, so a full collection while serving scans only what serving made. In the serving
    process under the exchange bench (hot path, part 3 in
    bench/results/exchange_throughput_session4.md) GC time fell 4-8x and the longest collection
    pause from 66-96 ms to 2-14 ms. No gc.collect() first: at this point it found nothing to
    free (0 unreachable objects of ~105,000) and cost 55-80 ms of start-up; what a freeze
    keeps is bounded by what start-up left, once."""
    gc.freeze()


async def _start_core(
    settings: Settings,
    started: contextlib.AsyncExitStack,
    clock: Clock,
    observability: Observability,
    *,
    fetcher: JsonFetcher | None,
    request_id: contextvars.ContextVar[str],
) -> _Core:
    """Keys, policy, the trusted issuers and the status list. Raises: KeyStoreError,
    PolicyLoadError, ConfigError."""
    store = build_keystore(settings, clock)
    keyring = Keyring(store)
    keyring.load()
    policy, observers = await start_policy(settings, clock, observability)
    started.push_async_callback(policy.close)
    started.push_async_callback(observers.close)
    idp_fetcher = _idp_fetcher(settings, fetcher, started)
    issuers = _trusted_issuers(settings, idp_fetcher, clock, observability)
    verifier = build_verifier(settings, issuers, clock)
    status = build_status_runtime(settings, keyring, clock)  # None unless [status_list]
    if status is not None:
        started.push_async_callback(status.close)
    return _Core(
        settings=settings,
        clock=clock,
        request_id=request_id,
        observability=observability,
        store=store,
        keyring=keyring,
        policy=policy,
        observers=observers,
        issuers=issuers,
        subject_cache=build_subject_cache(settings, verifier, issuers, clock, policy),
        status=status,
        callers=build_callers(settings),
    )


def _build_exchanger(core: _Core) -> TokenExchanger:
    """The one exchange pipeline every transport runs, behind admission control."""
    settings, clock, status = core.settings, core.clock, core.status
    minter = TokenMinter(
        core.keyring,
        clock,
        issuer=settings.server.issuer,
        max_lifetime_seconds=settings.tokens.max_lifetime_seconds,
        status=status.issuer if status else None,
    )
    admission = build_admission(settings, core.callers, clock)
    _watch(core.observability.metrics, core.subject_cache, core.policy, core.keyring, admission)
    return TokenExchanger(
        core.subject_cache,
        core.observers.engine,
        minter,
        clock,
        AuditLog(core.request_id),
        admission=admission,
        instruments=core.observability.instruments,
        revocations=status.gate if status else None,
        limits=request_limits(settings),
    )


def _public_app(
    core: _Core,
    exchanger: TokenExchanger,
    guard: ConnectionGuard,
    started: contextlib.AsyncExitStack,
) -> web.Application:
    """The public HTTP application: metadata, JWKS, token endpoint, status lists."""
    settings, clock = core.settings, core.clock
    replay_cache, secrets = _client_auth_support(settings, started)
    token_endpoint = build_token_endpoint(
        settings,
        exchanger.with_entrypoint("http"),
        clock,
        replay_cache,
        callers=core.callers,
        request_id=core.request_id,
        secrets=secrets,
        gate=build_attempt_gate(settings, clock),
    )
    return create_http_app(
        issuer=settings.server.issuer,
        keyring=core.keyring,
        ready=core.ready,
        jwks_max_age_seconds=settings.tokens.jwks_max_age_seconds,
        token_endpoint=token_endpoint,
        status_lists=core.status.endpoint if core.status else None,
        middlewares=(guard.middleware(),),
    )


async def _serve_grpc(
    core: _Core, exchanger: TokenExchanger, tls: TlsMaterial | None, reuse_port: bool
) -> GrpcServer:
    """Bind the gRPC listener: ExchangeToken and Envoy's ext_authz on one server."""
    settings, status, callers = core.settings, core.status, core.callers
    ext_authz = ExtAuthzServicer(
        build_gateway_authorizer(
            settings,
            exchanger.with_entrypoint("ext_authz"),
            core.clock,
            core.observability.metrics,
            revoked=status.gate.revoked if status else None,
            flushes=core.policy,
        ),
        trust_source_principal=settings.gateway.trust_source_principal,
        callers=callers,
        audit_refusal=exchanger.refused,
    )
    return await create_grpc_server(
        TokenExchangeServicer(exchanger, core.keyring, callers=callers),
        settings.server.grpc_listen,
        core.request_id,
        ext_authz,
        reuse_port=reuse_port,
        tls=tls,
        max_message_bytes=settings.limits.grpc_max_message_bytes,
        options=grpc_options(settings.grpc),
        screen=exchanger.screen,
        clock=core.clock,
    )


async def _serve(
    core: _Core,
    exchanger: TokenExchanger,
    app: web.Application,
    guard: ConnectionGuard,
    stack: contextlib.AsyncExitStack,
    *,
    reuse_port: bool,
) -> Service:
    """Bind gRPC, the public HTTP listener and the admin one. Their close and the background
    loops' go on `stack` first, so they run before those of the stores and clients."""
    settings = core.settings
    tasks = BackgroundTasks()
    stack.push_async_callback(tasks.close)  # after the listeners have drained
    listeners = Listeners()
    stack.push_async_callback(listeners.close)  # first of all
    tls = load_tls_material(settings.server)
    listeners.grpc = grpc_server = await _serve_grpc(core, exchanger, tls, reuse_port)
    runner, http_port = await _serve_http(app, settings.server.http_listen, guard, tls, reuse_port)
    listeners.http.append(runner)
    return Service(
        grpc=grpc_server,
        http_port=http_port,
        stack=stack,
        listeners=listeners,
        tasks=tasks,
        metrics_port=await _serve_metrics(core, listeners, reuse_port),
        policy=core.policy,
        subject_cache=core.subject_cache,
        observability=core.observability,
        observers=core.observers,
        http_guard=guard,
    )


async def _launch(core: _Core, service: Service) -> None:
    """The background loops: revocations, metrics sampling, JWKS refresh, key and policy
    watches; and what SIGHUP reloads."""
    settings, clock, tasks = core.settings, core.clock, service.tasks
    if core.status is not None:
        await core.status.launch(tasks.running)
    if core.observability.metrics is not None:
        tasks.spawn(core.observability.sample_forever(clock.now))
    for issuer in core.issuers.values():
        tasks.spawn(_refresh_forever(issuer.jwks, settings.trust.jwks_cache_seconds))
    policy_watch = _policy_watch(settings, core.policy)
    if policy_watch is not None:
        tasks.spawn(policy_watch)
    for key_task in _key_tasks(settings, core.store, core.keyring, clock):
        tasks.spawn(key_task)
    service.reloaders.append(core.keyring.refresh)
    if settings.policy.reads_folder or settings.policy.uses_bundle:
        service.reloaders.append(core.policy.folder_changed)


def _watch(
    metrics: Metrics | None,
    subject_cache: CachingTokenVerifier,
    policy: CachingPolicyEngine,
    keyring: Keyring,
    admission: Admission,
) -> None:
    """Report the hot-path caches, the signing keys and the in-flight count in /metrics."""
    if metrics is None:
        return
    metrics.watch_cache("subject", subject_cache)
    metrics.watch_cache("decision", policy)
    metrics.watch_keys(lambda: keyring.records)
    metrics.watch_in_flight(lambda: admission.in_flight)
    metrics.watch_admission(admission)


def _on_sighup(service: Service) -> None:
    service.tasks.spawn(service.reload())


async def run_until_signalled(
    settings: Settings,
    request_id: contextvars.ContextVar[str] | None = None,
    *,
    reuse_port: bool = False,
    on_started: Callable[[], None] | None = None,
) -> None:
    """`sekisho serve`: start, wait for SIGTERM/SIGINT, drain, exit.

    `on_started` runs once both listeners serve (a worker tells its supervisor it is up).
    """
    service = await start_service(settings, request_id=request_id, reuse_port=reuse_port)
    if on_started is not None:
        on_started()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP: reload keys and policy now (they also reload on change); never a stop.
    loop.add_signal_handler(signal.SIGHUP, _on_sighup, service)
    await stop.wait()
    log.info("service_stopping", extra={"grace_seconds": settings.server.shutdown_grace_seconds})
    await service.stop(settings.server.shutdown_grace_seconds)
    log.info("service_stopped")
