"""The composition root: builds every component from Settings and runs gRPC + HTTP on one loop."""

import asyncio
import contextlib
import contextvars
import logging
import signal
from collections.abc import Coroutine
from dataclasses import dataclass, field

from aiohttp import web

from sekisho.audit import AuditLog
from sekisho.clock import Clock, SystemClock
from sekisho.config import Settings
from sekisho.exchange import TokenExchanger
from sekisho.gateway.authorizer import GatewayAuthorizer, TokenHeader
from sekisho.gateway.cache import GatewayTokenCache
from sekisho.gateway.routes import PROFILE_TOKEN_TYPES, Route, RouteTable
from sekisho.http.app import create_http_app
from sekisho.http.client_auth import ClientAuthenticator, registered_client
from sekisho.http.token import TOKEN_PATH, TokenEndpoint
from sekisho.identity.fetcher import HttpJsonFetcher, JsonFetcher
from sekisho.identity.jwks import JwksCache
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.keystores import build_key_manager, build_keystore
from sekisho.minting.minter import TokenMinter
from sekisho.policy.engine import PolicyRuntime
from sekisho.policy.opa.api import OpaApi
from sekisho.policy.opa.engine import OpaPolicyEngine
from sekisho.policy.rego import RegoPolicyEngine
from sekisho.reload import poll_forever, watch_directory
from sekisho.rpc.ext_authz import ExtAuthzServicer
from sekisho.rpc.server import GrpcServer, create_grpc_server
from sekisho.rpc.servicer import TokenExchangeServicer
from sekisho.signing.keyring import Keyring
from sekisho.signing.manager import ManagedKeyStore
from sekisho.signing.rotation import AutoRotator, check_interval, rotate_forever
from sekisho.validation import RequestLimits
from sekisho.verify.replay import InMemoryReplayCache

log = logging.getLogger(__name__)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass
class Service:
    """A running Sekisho: both listeners and the background tasks."""

    grpc: GrpcServer
    http_runner: web.AppRunner
    http_port: int
    fetcher: HttpJsonFetcher | None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    policy: PolicyRuntime | None = None

    async def stop(self, grace: float) -> None:
        """Drain in-flight RPCs for up to `grace` seconds, then close everything."""
        await self.grpc.set_serving(False)
        await self.grpc.server.stop(grace)
        await self.http_runner.cleanup()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.fetcher is not None:
            await self.fetcher.close()
        if self.policy is not None:
            await self.policy.close()


def _trusted_issuers(
    settings: Settings, fetcher: JsonFetcher, clock: Clock
) -> dict[str, TrustedIssuer]:
    trust = settings.trust
    return {
        entry.issuer: TrustedIssuer(
            config=entry,
            jwks=JwksCache(
                entry.issuer,
                fetcher,
                clock,
                jwks_uri=entry.jwks_uri,
                discovery_url=entry.discovery_url,
                min_refetch_interval=trust.jwks_refetch_min_interval_seconds,
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
    if keys.rotation_period:
        rotator = AutoRotator(build_key_manager(settings, store, clock), keyring.refresh)
        tasks.append(rotate_forever(rotator, check_interval(keys.rotation_period)))
    return tasks


def build_policy_engine(settings: Settings) -> PolicyRuntime:
    """The configured policy engine, not yet started."""
    policy = settings.policy
    if policy.engine == "opa":
        return OpaPolicyEngine(
            OpaApi(policy.opa_url, policy.opa_timeout_seconds),
            policy.path,
            policy.query,
            manage=policy.manage,
            timeout_seconds=policy.opa_timeout_seconds,
            check_interval_seconds=policy.opa_check_interval_seconds,
        )
    return RegoPolicyEngine(policy.path, policy.query)


def build_gateway_authorizer(
    settings: Settings, exchanger: TokenExchanger, clock: Clock
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
        )
        for index, entry in enumerate(gateway.routes)
    )
    cache = GatewayTokenCache(
        clock, max_entries=gateway.cache_max_entries, margin_seconds=gateway.cache_margin_seconds
    )
    return GatewayAuthorizer(
        exchanger,
        routes,
        cache,
        token_header=TokenHeader(gateway.token_header, gateway.token_scheme),
        tool_header=gateway.tool_header,
        limits=RequestLimits(),
    )


def build_token_endpoint(
    settings: Settings, exchanger: TokenExchanger, clock: Clock
) -> TokenEndpoint | None:
    """POST /oauth2/token when clients are registered; None (no endpoint) otherwise."""
    registered = settings.token_endpoint.clients
    if not registered:
        return None
    issuer = settings.server.issuer
    clients = {c.id: registered_client(c.id, c.secret_hash, c.jwks) for c in registered}
    authenticator = ClientAuthenticator(
        clients,
        audiences=frozenset({issuer, issuer + TOKEN_PATH}),
        # One worker (config enforces it), so an in-process replay cache sees every assertion.
        replay_cache=InMemoryReplayCache(),
        leeway_seconds=settings.trust.leeway_seconds,
    )
    return TokenEndpoint(exchanger, authenticator, RequestLimits(), clock.now)


async def _refresh_forever(cache: JwksCache, interval: float) -> None:
    while True:
        try:
            await cache.refresh()
        except Exception:  # a background loop: log and go on
            log.exception("jwks_refresh_crashed")
        await asyncio.sleep(cache.next_refresh_in(interval))


async def start_service(
    settings: Settings,
    *,
    clock: Clock | None = None,
    fetcher: JsonFetcher | None = None,
    request_id: contextvars.ContextVar[str] | None = None,
) -> Service:
    """Load keys and policy (refusing to start if either is broken), then bind both listeners.

    Raises: ConfigError, KeyStoreError, PolicyLoadError, OSError (bind).
    """
    clock = clock or SystemClock()
    request_id = request_id or contextvars.ContextVar("request_id", default="")
    store = build_keystore(settings, clock)
    keyring = Keyring(store)
    keyring.load()
    policy = build_policy_engine(settings)
    await policy.start()
    own_fetcher: HttpJsonFetcher | None = None
    if fetcher is None:
        own_fetcher = HttpJsonFetcher(settings.trust.http_timeout_seconds)
        fetcher = own_fetcher
    issuers = _trusted_issuers(settings, fetcher, clock)
    verifier = TokenVerifier(
        issuers,
        clock,
        own_issuer=settings.server.issuer,
        leeway_seconds=settings.trust.leeway_seconds,
        max_token_bytes=settings.trust.max_token_bytes,
    )
    minter = TokenMinter(
        keyring,
        clock,
        issuer=settings.server.issuer,
        max_lifetime_seconds=settings.tokens.max_lifetime_seconds,
    )
    exchanger = TokenExchanger(verifier, policy, minter, clock, AuditLog())
    servicer = TokenExchangeServicer(exchanger, keyring, RequestLimits())
    ext_authz = ExtAuthzServicer(
        build_gateway_authorizer(settings, exchanger, clock),
        trust_source_principal=settings.gateway.trust_source_principal,
    )
    grpc_server = await create_grpc_server(
        servicer, settings.server.grpc_listen, request_id, ext_authz
    )

    def ready() -> bool:
        return keyring.loaded and policy.ready

    app = create_http_app(
        issuer=settings.server.issuer,
        keyring=keyring,
        ready=ready,
        jwks_max_age_seconds=settings.tokens.jwks_max_age_seconds,
        token_endpoint=build_token_endpoint(settings, exchanger, clock),
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    host, port = _split_listen(settings.server.http_listen)
    site = web.TCPSite(runner, host, port)
    await site.start()
    http_port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    service = Service(
        grpc=grpc_server,
        http_runner=runner,
        http_port=http_port,
        fetcher=own_fetcher,
        policy=policy,
    )
    for issuer in issuers.values():
        task = _refresh_forever(issuer.jwks, settings.trust.jwks_cache_seconds)
        service.tasks.append(asyncio.create_task(task))
    if settings.policy.watch and settings.policy.reads_folder:
        task = watch_directory(settings.policy.path, policy.folder_changed, "policy")
        service.tasks.append(asyncio.create_task(task))
    for key_task in _key_tasks(settings, store, keyring, clock):
        service.tasks.append(asyncio.create_task(key_task))
    await grpc_server.set_serving(True)
    log.info(
        "service_started",
        extra={
            "grpc_port": grpc_server.port,
            "http_port": http_port,
            "issuer": settings.server.issuer,
        },
    )
    return service


async def run_until_signalled(
    settings: Settings, request_id: contextvars.ContextVar[str] | None = None
) -> None:
    """`sekisho serve`: start, wait for SIGTERM/SIGINT, drain, exit."""
    service = await start_service(settings, request_id=request_id)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("service_stopping", extra={"grace_seconds": settings.server.shutdown_grace_seconds})
    await service.stop(settings.server.shutdown_grace_seconds)
    log.info("service_stopped")
