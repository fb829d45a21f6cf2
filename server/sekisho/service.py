"""The composition root: starts a service from Settings and runs gRPC + HTTP on one loop.

The parts, in the order a start uses them: components.py builds each component,
service_core.py loads what every listener shares (keys, policy, issuers, status list) and the
exchange pipeline, service_listeners.py binds the listeners, service_tasks.py holds the
background loops. This module orders them, owns the Service they make up, and its shutdown.
"""

import asyncio
import contextlib
import contextvars
import gc
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from sekisho.clock import Clock, SystemClock
from sekisho.config import Settings
from sekisho.decision_observers import DecisionObservers
from sekisho.exchange import TokenExchanger
from sekisho.exposure import check_exposure
from sekisho.http.guard import ConnectionGuard
from sekisho.identity.cache import CachingTokenVerifier
from sekisho.loops import LoopFailures
from sekisho.observability import Observability, build_observability
from sekisho.policy.engine import PolicyRuntime
from sekisho.protection import build_connection_guard
from sekisho.reload import reload_now
from sekisho.rpc.server import GrpcServer
from sekisho.service_core import ServiceCore, build_exchanger, start_core
from sekisho.service_listeners import public_app, serve_grpc, serve_http, serve_metrics
from sekisho.service_tasks import key_tasks, policy_watch, refresh_forever
from sekisho.shutdown import BackgroundTasks, Listeners
from sekisho.tls import load_tls_material
from sekisho.verify.fetcher import JsonFetcher

log = logging.getLogger(__name__)


@dataclass
class Service:
    """A running Sekisho: both listeners and the background tasks. Every component's close is on
    `stack`, in shutdown order (shutdown.py); stop() is closing it."""

    grpc: GrpcServer
    http_port: int
    stack: contextlib.AsyncExitStack
    listeners: Listeners
    tasks: BackgroundTasks
    loop_failures: LoopFailures  # counts a SIGHUP reload that raises
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
        """SIGHUP: reload keys and policy now (reload.reload_now)."""
        log.info("reload_requested", extra={"reloaders": len(self.reloaders)})
        await reload_now(self.reloaders, self.loop_failures)

    async def stop(self, grace: float) -> None:
        """Drain in-flight RPCs for up to `grace` seconds, then close everything."""
        self.listeners.grace = grace
        await self.stack.aclose()


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
    core = await start_core(
        settings, started, clock, observability, fetcher=fetcher, request_id=request_id
    )
    exchanger = build_exchanger(core)
    guard = build_connection_guard(settings, clock)
    if core.observability.metrics is not None:
        core.observability.metrics.watch_connections(guard)
    app = public_app(core, exchanger, guard, started)
    if core.status is not None:
        await core.status.load()  # before any listener takes a call
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


async def _serve(
    core: ServiceCore,
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
    listeners.grpc = grpc_server = await serve_grpc(core, exchanger, tls, reuse_port)
    runner, http_port = await serve_http(
        app, settings.server.http_listen, guard, tls, reuse_port, key="server.http_listen"
    )
    listeners.http.append(runner)
    return Service(
        grpc=grpc_server,
        http_port=http_port,
        stack=stack,
        listeners=listeners,
        tasks=tasks,
        loop_failures=core.observability.loop_failures,
        metrics_port=await serve_metrics(core, listeners, reuse_port),
        policy=core.policy,
        subject_cache=core.subject_cache,
        observability=core.observability,
        observers=core.observers,
        http_guard=guard,
    )


async def _launch(core: ServiceCore, service: Service) -> None:
    """The background loops: revocations, metrics sampling, JWKS refresh, key and policy
    watches; and what SIGHUP reloads."""
    settings, clock, tasks = core.settings, core.clock, service.tasks
    failures = core.observability.loop_failures
    if core.status is not None:
        await core.status.launch(tasks.running, failures)
    if core.observability.metrics is not None:
        tasks.spawn(core.observability.sample_forever(clock.now))
    for issuer in core.issuers.values():
        tasks.spawn(refresh_forever(issuer.jwks, settings.trust.jwks_cache_seconds, failures))
    watch = policy_watch(settings, core.policy, failures)
    if watch is not None:
        tasks.spawn(watch)
    for key_task in key_tasks(settings, core.store, core.keyring, clock, failures):
        tasks.spawn(key_task)
    service.reloaders.append(core.keyring.refresh)
    if settings.policy.reads_folder or settings.policy.uses_bundle:
        service.reloaders.append(core.policy.folder_changed)


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
