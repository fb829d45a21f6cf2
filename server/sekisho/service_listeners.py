"""Binds the listeners of a service: gRPC (ExchangeToken, ext_authz), the public HTTP application
behind the connection guard, and the admin listener (/metrics).
"""

import contextlib
import errno
import logging
import os

from aiohttp import web

from sekisho.clock import SystemClock
from sekisho.components import build_gateway_authorizer, build_replay_cache, build_token_endpoint
from sekisho.config import Settings
from sekisho.errors import ConfigError, listen_failed
from sekisho.exchange import TokenExchanger
from sekisho.http.app import create_http_app, create_metrics_app
from sekisho.http.guard import ConnectionGuard, handler_args
from sekisho.http.listener import GuardedSite
from sekisho.http.protocol_log import ProtocolErrorLog
from sekisho.http.secrets import SecretChecker
from sekisho.protection import (
    build_attempt_gate,
    build_connection_guard,
    grpc_options,
    request_limits,
)
from sekisho.rpc.admission_gate import AdmissionGate, ShedLog
from sekisho.rpc.ext_authz import ExtAuthzServicer
from sekisho.rpc.server import EXCHANGE_METHOD, GrpcServer, create_grpc_server
from sekisho.rpc.servicer import TokenExchangeServicer, largest_request_bytes
from sekisho.service_core import ServiceCore
from sekisho.shutdown import Listeners
from sekisho.tls import TlsMaterial, http_ssl_context
from sekisho.verify.replay import ReplayCache

log = logging.getLogger(__name__)


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


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


def public_app(
    core: ServiceCore,
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


async def serve_http(
    app: web.Application,
    listen: str,
    guard: ConnectionGuard,
    tls: TlsMaterial | None,
    reuse_port: bool,
    *,
    key: str,
) -> tuple[web.AppRunner, int]:
    """Bind the HTTP listener behind the connection guard ([http]), which admits each connection
    before any TLS work (http/listener.py); returns the bound port.

    Raises: ConfigError naming `key` (the setting `listen` came from) when it cannot bind."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        logger=ProtocolErrorLog(SystemClock()),  # parser refusals: one line per interval
        **handler_args(guard.limits),
    )
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
    try:
        await site.start()
    except OSError as exc:  # aiohttp's "[Errno 98] error while attempting to bind …" names no key
        await runner.cleanup()
        why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        if exc.errno == errno.EADDRINUSE:
            why += " (another Sekisho running?)"
        raise listen_failed(key, listen, why) from exc
    return runner, site.port


def exchange_request_bound(settings: Settings) -> int:
    """The longest ExchangeToken request [limits] and trust.max_token_bytes accept
    (rpc/servicer.largest_request_bytes), which the admission gate refuses past.

    Raises: ConfigError naming limits.grpc_max_message_bytes when it is below that: grpc core
    would refuse a valid request RESOURCE_EXHAUSTED (no ErrorInfo) before Sekisho read it. The
    load-time rule (at least 2 x trust.max_token_bytes) leaves out the other fields: with
    max_token_bytes = 131072 and the default cap (262144) it passed, and the two tokens at their
    limit with an audience took 262,270 bytes (red team session 12, second pass)."""
    largest = largest_request_bytes(request_limits(settings))
    cap = settings.limits.grpc_max_message_bytes
    if cap < largest:
        raise ConfigError(
            f"config key 'limits.grpc_max_message_bytes': {cap} is below the largest "
            f"ExchangeToken request [limits] and trust.max_token_bytes accept ({largest} bytes), "
            f"which grpc would refuse unread; set it to at least {largest}"
        )
    return largest


def gateway_trust(settings: Settings) -> frozenset[str]:
    """The callers whose ext_authz Checks may name a source principal ([gateway]
    trusted_gateways), said at start when any caller may (trust_source_principal with none
    listed): agents reach the same grpc_listen as the gateway.

    Raises: ConfigError naming gateway.trusted_gateways when it cannot work as set
    (Settings.trusted_gateways_problem: refused at load already, unless the settings were
    copied without validation)."""
    gateway = settings.gateway
    problem = settings.trusted_gateways_problem()
    if problem:
        raise ConfigError(problem)
    trusted = frozenset(gateway.trusted_gateways)
    if gateway.trust_source_principal and not trusted:
        log.warning(
            "gateway_source_principal_from_any_caller",
            extra={
                "fix": "set gateway.trusted_gateways to the gateway's [[callers]] id: any "
                "caller reaching server.grpc_listen can name any principal in a Check",
            },
        )
    return trusted


async def serve_grpc(
    core: ServiceCore, exchanger: TokenExchanger, tls: TlsMaterial | None, reuse_port: bool
) -> GrpcServer:
    """Bind the gRPC listener: ExchangeToken and Envoy's ext_authz on one server.

    Raises: ConfigError (exchange_request_bound, gateway_trust; the listener cannot bind)."""
    settings, status, callers = core.settings, core.status, core.callers
    largest_request = exchange_request_bound(settings)
    trusted = gateway_trust(settings)
    gateway = exchanger.with_entrypoint("ext_authz")
    ext_authz = ExtAuthzServicer(
        build_gateway_authorizer(
            settings,
            gateway,
            core.clock,
            core.observability.metrics,
            revoked=status.gate.revoked if status else None,
            published=core.keyring.publishes,
            flushes=core.policy,
            subject_verifier=core.subject_cache,
        ),
        trust_source_principal=settings.gateway.trust_source_principal,
        trusted_gateways=trusted,
        callers=callers,
        check_revoked=status.gate.check_keys if status else None,
        audit_refusal=gateway.refused,
        crashed=gateway.crashed,
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
        acceptors=settings.grpc.acceptors,
        gate=AdmissionGate(
            exchanger.screen,
            frozenset({EXCHANGE_METHOD}),
            ShedLog(core.clock),
            largest_request,
            message_timeout=settings.grpc.message_timeout_seconds,
        ),
    )


async def serve_metrics(core: ServiceCore, listeners: Listeners, reuse_port: bool) -> int:
    """GET /metrics on its own admin listener ([metrics] listen), never the public one; returns
    its port, 0 when metrics are off."""
    observability, clock = core.observability, core.clock
    if observability.metrics is None:
        return 0
    # Its own guard with the [http] bounds: the deployed config binds it to the pod IP, where
    # anyone on the cluster network reaches it unauthenticated, and aiohttp alone has no header
    # timeout (half-open connections held descriptors until gRPC could not accept either).
    guard = build_connection_guard(core.settings, clock)
    app = create_metrics_app(
        lambda: observability.scrape(clock.now()), middlewares=(guard.middleware(),)
    )
    listen = core.settings.metrics.listen
    runner, port = await serve_http(app, listen, guard, None, reuse_port, key="metrics.listen")
    listeners.http.append(runner)
    return port
