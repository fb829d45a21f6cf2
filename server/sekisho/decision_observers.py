"""Builds what watches policy decisions from [decision_log] and [policy.shadow]: the decision log
writer, the shadow evaluator and its engine, and the PolicyEngine the exchange calls (the live
engine, wrapped so both see every decision). With neither configured the live engine is used
as is: no wrapper, no cost.
"""

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path

from sekisho.clock import Clock
from sekisho.config import Settings
from sekisho.errors import PolicyLoadError
from sekisho.keystores import refuse_keystore_file
from sekisho.metrics import Metrics
from sekisho.policy.cache import CachingPolicyEngine
from sekisho.policy.decisionlog import DecisionEvents, DecisionLog, default_labels
from sekisho.policy.engine import PolicyEngine, PolicyRuntime
from sekisho.policy.options import ShadowConfig
from sekisho.policy.redaction import Redactor, build_hasher
from sekisho.policy.rotation import RotatingFile
from sekisho.policy.shadow import ShadowBounds, ShadowCounters, ShadowEvaluator
from sekisho.policy.tap import DecisionObserver, ObservedPolicyEngine
from sekisho.policy.wasm.compiler import entrypoint_of

log = logging.getLogger(__name__)

EngineFactory = Callable[[Settings, Clock], PolicyRuntime]
# Reloads an engine when its folder or bundle file changes (None: nothing to watch).
WatchFactory = Callable[[Settings, PolicyRuntime], Coroutine[None, None, None] | None]


@dataclass
class DecisionObservers:
    """The engine the exchange should call, and the observers behind it."""

    engine: PolicyEngine
    decision_log: DecisionLog | None = None
    shadow: ShadowEvaluator | None = None
    shadow_engine: CachingPolicyEngine | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def close(self) -> None:
        """Stop shadowing, then write out the queued decision records."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.shadow is not None:
            await self.shadow.close()
        if self.shadow_engine is not None:
            await self.shadow_engine.close()
        if self.decision_log is not None:
            await asyncio.to_thread(self.decision_log.close)


def decision_log_path(path: Path, *, several_workers: bool) -> Path:
    """One file per process when workers share the config: rotation is not safe across
    processes. `decisions.jsonl` → `decisions.<pid>.jsonl`."""
    if not several_workers:
        return path
    return path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")


def build_decision_log(
    settings: Settings, metrics: Metrics | None, *, several_workers: bool
) -> DecisionLog:
    """The [decision_log] writer, not started. Raises: ConfigError (hash key unreadable, or the
    path a file the keystore writes)."""
    config = settings.decision_log
    path = decision_log_path(config.path, several_workers=several_workers)
    # A record appended to keyring.json made it unreadable and nothing signed (as the audit
    # logs, red team session 18).
    refuse_keystore_file(settings, path, "decision_log.path")
    hasher = build_hasher(config) if config.hash_fields else None
    events = DecisionEvents(
        entrypoint_of(settings.policy.query),
        Redactor(hasher, config.hash_fields, config.erase_fields),
        default_labels(),
    )
    file = RotatingFile(
        path,
        max_bytes=config.max_bytes,
        max_files=config.max_files,
    )
    on_count = metrics.decision_log_records.labels if metrics else None
    return DecisionLog(
        events,
        file,
        queue_size=config.queue_size,
        on_count=(lambda outcome: on_count(outcome).inc()) if on_count else lambda outcome: None,
    )


def opened_fields(settings: Settings, decision_log: DecisionLog) -> dict[str, object]:
    """The `decision_log_opened` line: where records go and how they are pseudonymised (the
    method, never its key file or salt), so an operator sees the log is on, whichever of the
    config file or SEKISHO_DECISION_LOG__* turned it on."""
    config = settings.decision_log
    return {
        "path": str(decision_log.path),
        "hash_method": config.hash_method if config.hash_fields else "none",
        "hash_fields": list(config.hash_fields),
        "erase_fields": list(config.erase_fields),
    }


def shadow_bounds(config: ShadowConfig) -> ShadowBounds:
    """[policy.shadow] queue_size, timeout_seconds and cpu_share."""
    return ShadowBounds(config.queue_size, config.timeout_seconds, config.cpu_share)


def shadow_settings(settings: Settings) -> Settings:
    """The whole configuration with [policy] replaced by what the shadow names."""
    return settings.model_copy(update={"policy": settings.policy.for_shadow()})


async def start_shadow(
    settings: Settings, clock: Clock, metrics: Metrics | None, build_engine: EngineFactory
) -> tuple[ShadowEvaluator, CachingPolicyEngine]:
    """The shadow engine (behind its own decision cache) and its evaluator, started. A shadow
    policy that does not load is logged, never fatal: every shadow evaluation is then an
    `error` difference until a fixed policy loads."""
    config = settings.policy.shadow
    engine = CachingPolicyEngine(
        build_engine(shadow_settings(settings), clock),
        clock,
        max_entries=settings.cache.decision_max_entries,
    )
    try:
        await engine.start()
    except PolicyLoadError as exc:
        source = config.path or config.bundle_file or config.bundle_url
        log.error("shadow_policy_load_failed", extra={"path": source, "error": str(exc)})
    counters = ShadowCounters()
    if metrics is not None:
        counters = ShadowCounters(
            lambda outcome: metrics.shadow_evaluations.labels(outcome).inc(),
            metrics.shadow_differed,
        )
    evaluator = ShadowEvaluator(engine, shadow_bounds(config), counters)
    evaluator.start()
    return evaluator, engine


async def build_decision_observers(
    settings: Settings,
    live: PolicyEngine,
    clock: Clock,
    metrics: Metrics | None,
    *,
    build_engine: EngineFactory,
    watch: WatchFactory,
    several_workers: bool = False,
) -> DecisionObservers:
    """Everything [decision_log] and [policy.shadow] ask for, running.

    Raises: ConfigError when the decision log's hash key cannot be read.
    """
    observers = DecisionObservers(engine=live)
    watching: list[DecisionObserver] = []
    if settings.decision_log.enabled:
        observers.decision_log = build_decision_log(
            settings, metrics, several_workers=several_workers
        )
        observers.decision_log.start()
        log.info("decision_log_opened", extra=opened_fields(settings, observers.decision_log))
        watching.append(observers.decision_log)
    if settings.policy.shadow.enabled:
        observers.shadow, observers.shadow_engine = await start_shadow(
            settings, clock, metrics, build_engine
        )
        watching.append(observers.shadow)
        watching_shadow = watch(shadow_settings(settings), observers.shadow_engine)
        if watching_shadow is not None:
            observers.tasks.append(asyncio.create_task(watching_shadow))
    if watching:
        observers.engine = ObservedPolicyEngine(live, clock, watching)
    return observers
