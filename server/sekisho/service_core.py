"""What every listener shares, built and loaded before any of them binds: keys, the policy behind
its decision cache, the trusted issuers, the status list; and the one exchange pipeline on them.
"""

import contextlib
import contextvars
from dataclasses import dataclass

from sekisho.admission import Admission
from sekisho.audit import AuditLog
from sekisho.callers import CallerRegistry
from sekisho.clock import Clock
from sekisho.components import (
    build_callers,
    build_policy_engine,
    build_subject_cache,
    build_verifier,
    trusted_issuers,
)
from sekisho.config import Settings
from sekisho.decision_observers import DecisionObservers, build_decision_observers
from sekisho.exchange import TokenExchanger
from sekisho.identity.cache import CachingTokenVerifier
from sekisho.identity.verifier import TrustedIssuer
from sekisho.keystores import build_keystore
from sekisho.minting.minter import TokenMinter
from sekisho.observability import Observability
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.load_events import SHADOW_LOAD_EVENTS
from sekisho.policy.wasm.bundles import BundlePolicyEngine
from sekisho.protection import build_admission, request_limits
from sekisho.service_tasks import policy_watch
from sekisho.signing.keyring import Keyring
from sekisho.signing.manager import ManagedKeyStore
from sekisho.status_components import StatusRuntime, build_status_runtime
from sekisho.verify.fetcher import HttpJsonFetcher, JsonFetcher


@dataclass
class ServiceCore:
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


def _idp_fetcher(
    settings: Settings, given: JsonFetcher | None, started: contextlib.AsyncExitStack
) -> JsonFetcher:
    """The fetcher for IdP discovery and JWKS: `given` (tests), else one of our own to close."""
    if given is not None:
        return given
    own = HttpJsonFetcher(settings.trust.http_timeout_seconds)
    started.push_async_callback(own.close)
    return own


async def start_policy(
    settings: Settings, clock: Clock, observability: Observability
) -> tuple[CachingPolicyEngine, DecisionObservers]:
    """The live engine behind the decision cache, started, and what observes its decisions
    ([decision_log], [policy.shadow]). Raises: PolicyLoadError, ConfigError."""
    failures = observability.loop_failures
    policy = CachingPolicyEngine(
        build_policy_engine(settings, clock, failures),
        clock,
        max_entries=settings.cache.decision_max_entries,
    )
    await policy.start()
    observers = await build_decision_observers(
        settings,
        policy,
        clock,
        observability.metrics,
        build_engine=lambda shadow, at: build_policy_engine(
            shadow, at, failures, SHADOW_LOAD_EVENTS
        ),
        watch=lambda shadow, engine: policy_watch(shadow, engine, failures, "shadow"),
        several_workers=settings.server.workers != 1,
    )
    return policy, observers


async def start_core(
    settings: Settings,
    started: contextlib.AsyncExitStack,
    clock: Clock,
    observability: Observability,
    *,
    fetcher: JsonFetcher | None,
    request_id: contextvars.ContextVar[str],
) -> ServiceCore:
    """Keys, policy, the trusted issuers and the status list. Raises: KeyStoreError,
    PolicyLoadError, ConfigError."""
    store = build_keystore(settings, clock)
    keyring = Keyring(store)
    keyring.load()
    policy, observers = await start_policy(settings, clock, observability)
    started.push_async_callback(policy.close)
    started.push_async_callback(observers.close)
    idp_fetcher = _idp_fetcher(settings, fetcher, started)
    issuers = trusted_issuers(settings, idp_fetcher, clock, observability)
    verifier = build_verifier(settings, issuers, clock)
    status = build_status_runtime(settings, keyring, clock)  # None unless [status_list]
    if status is not None:
        started.push_async_callback(status.close)
    return ServiceCore(
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


def build_exchanger(core: ServiceCore) -> TokenExchanger:
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
    _watch_in_metrics(core, admission)
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


def _watch_in_metrics(core: ServiceCore, admission: Admission) -> None:
    """Report the hot-path caches, the signing keys, the in-flight count and the policy
    bundles (live and shadow) in /metrics."""
    metrics = core.observability.metrics
    if metrics is None:
        return
    metrics.watch_cache("subject", core.subject_cache)
    metrics.watch_cache("decision", core.policy)
    metrics.watch_keys(lambda: core.keyring.records)
    metrics.watch_in_flight(lambda: admission.in_flight)
    metrics.watch_admission(admission)
    if isinstance(core.policy.engine, BundlePolicyEngine):
        metrics.watch_bundle(core.policy.engine.status)
    shadow = core.observers.shadow_engine
    if shadow is not None and isinstance(shadow.engine, BundlePolicyEngine):
        metrics.watch_shadow_bundle(shadow.engine.status)
