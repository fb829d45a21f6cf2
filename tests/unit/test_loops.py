"""Background loops: every loop of a running service counts each failed iteration (the
`loop` label of sekisho_background_failures_total), logs it under its own event, and goes on.

Each test breaks one loop's step with an error the loop does not foresee, and fails if that
loop stops counting (or stops going on: at least two failures are counted)."""

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from sekisho.config import Settings
from sekisho.loops import Loop
from sekisho.metrics import MULTIPROC_ENV, Metrics
from sekisho.observability import build_observability
from sekisho.policy.load_events import LIVE_LOAD_EVENTS, SHADOW_LOAD_EVENTS, LoadEvents
from sekisho.policy.opa.api import OpaApi
from sekisho.policy.opa.engine import OpaPolicyEngine
from sekisho.policy.wasm.bundles import BundlePolicyEngine, Polling
from sekisho.reload import poll_forever, reload_now, retry_with_backoff, watch_directory
from sekisho.service_tasks import refresh_forever
from sekisho.signing.rotation import AutoRotator, rotate_forever
from sekisho.status.issuer import AllocationPolicy, StatusListIssuer
from sekisho.status.revocations import RevocationGate

from tests.bounds import wasm_limits
from tests.embedded import shared_runtime
from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures
from tests.unit.policy.inputs import QUERY

GIVE_UP_ROUNDS = 500  # x 10 ms: a bound on waiting, not an assertion about time


def boom(*_: object) -> Any:
    raise RuntimeError("a bug in the step")


async def until_counted(
    failures: RecordedFailures,
    loop: str,
    running: Coroutine[None, None, None],
    times: int = 2,
    poke: Callable[[], object] = lambda: None,
) -> None:
    """Run `running` until `loop` has `times` failures counted (then cancel it)."""
    task = asyncio.create_task(running)
    try:
        for _ in range(GIVE_UP_ROUNDS):
            if failures.counts[loop] >= times or task.done():
                break
            poke()
            await asyncio.sleep(0.01)
        assert not task.done(), "the loop ended"
        assert failures.counts[loop] >= times
        assert set(failures.counts) == {loop}
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class _BrokenManager:
    def auto_rotate(self, actor: object) -> None:
        raise RuntimeError("a bug in auto_rotate")


class _BrokenJwks:
    async def refresh(self) -> None:
        boom()

    def next_refresh_in(self, interval: float) -> float:
        return 0.0


class _BrokenStore:
    """A status store whose every read fails in a way nobody foresaw."""

    in_force = prune = record = boom


async def _noop() -> None:
    return None


async def test_key_rotation_counts_a_crashed_check(caplog: pytest.LogCaptureFixture) -> None:
    failures = RecordedFailures()
    rotator = AutoRotator(_BrokenManager(), _noop)  # type: ignore[arg-type]
    await until_counted(failures, "key_rotation", rotate_forever(rotator, 0.0, failures))
    assert "key_rotation_crashed" in [r.message for r in caplog.records]


async def test_jwks_refresh_counts_a_crashed_refresh() -> None:
    failures = RecordedFailures()
    running = refresh_forever(_BrokenJwks(), 60.0, failures)  # type: ignore[arg-type]
    await until_counted(failures, "jwks_refresh", running)


async def test_revocations_refresh_counts_a_failed_refresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = RecordedFailures()
    gate = RevocationGate(_BrokenStore(), FakeClock(), max_stale_seconds=2.0)  # type: ignore[arg-type]
    await until_counted(failures, "revocations_refresh", gate.refresh_forever(0.0, failures))
    assert "revocations_refresh_failed" in [r.message for r in caplog.records]


async def test_status_flush_counts_a_failed_flush() -> None:
    failures = RecordedFailures()
    clock = FakeClock()
    issuer = StatusListIssuer(
        _BrokenStore(),  # type: ignore[arg-type]
        clock,
        base_uri="https://sekisho.example/statuslists",
        policy=AllocationPolicy(
            list_size=1024, lease_size=64, lease_seconds=60, max_token_lifetime=330
        ),
    )
    # Prune runs at most every PRUNE_EVERY_SECONDS: move the clock so each tick prunes again.
    running = issuer.flush_forever(0.0, failures)
    await until_counted(failures, "status_flush", running, poke=lambda: clock.advance(3600))


async def test_metrics_sampling_counts_a_failed_sample() -> None:
    observability = build_observability(Settings())
    assert observability.metrics is not None
    observability.metrics.watch_in_flight(boom)
    failures = RecordedFailures()
    observability.loop_failures = failures
    await until_counted(failures, "metrics_sample", observability.sample_forever(lambda: 0.0), 1)


async def test_opa_supervisor_counts_a_crashed_check(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    failures = RecordedFailures()
    # Nothing listens on port 9: OPA "does not answer", which the engine foresees.
    engine = OpaPolicyEngine(
        OpaApi("http://127.0.0.1:9", 0.5),
        tmp_path,
        QUERY,
        manage=False,
        timeout_seconds=0.5,
        check_interval_seconds=0.01,
        failures=failures,
    )
    await engine.start()
    try:
        monkeypatch.setattr(engine, "check", boom)
        for _ in range(GIVE_UP_ROUNDS):
            if failures.counts["opa_supervisor"] >= 2:
                break
            await asyncio.sleep(0.01)
        assert failures.counts == {"opa_supervisor": failures.counts["opa_supervisor"]}
        assert failures.counts["opa_supervisor"] >= 2
    finally:
        await engine.close()


class _BrokenDownloader:
    location = "https://bundles.test/sekisho.tar.gz"  # what bundle events name as the source

    async def fetch(self, etag: str) -> None:
        boom()

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("events", "label", "event"),
    [
        pytest.param(
            LIVE_LOAD_EVENTS, "policy_bundle_poll", "policy_bundle_poll_failed", id="live"
        ),
        # A [policy.shadow] bundle's poller counted its crashes as the live poller's: an alert
        # on the live label fired for a candidate policy nobody serves.
        pytest.param(
            SHADOW_LOAD_EVENTS,
            "shadow_bundle_poll",
            "shadow_policy_bundle_poll_failed",
            id="shadow",
        ),
    ],
)
async def test_bundle_poller_counts_an_unforeseen_failure(
    events: LoadEvents, label: str, event: str, caplog: pytest.LogCaptureFixture
) -> None:
    failures = RecordedFailures()
    engine = BundlePolicyEngine(
        QUERY,
        wasm_limits(),
        failures=failures,
        downloader=_BrokenDownloader(),  # type: ignore[arg-type]
        polling=Polling(min_delay=0.01, max_delay=0.01),
        runtime=shared_runtime(),
        events=events,
    )
    with caplog.at_level(logging.ERROR):
        await engine.start()  # the first poll fails; the poller goes on
    try:
        for _ in range(GIVE_UP_ROUNDS):
            if failures.counts[label] >= 2:
                break
            await asyncio.sleep(0.01)
        assert failures.counts == {label: failures.counts[label]}
        assert failures.counts[label] >= 2
        assert {r.message for r in caplog.records if r.levelno == logging.ERROR} == {event}
    finally:
        await engine.close()


async def test_key_poll_counts_a_crashed_reload() -> None:
    failures = RecordedFailures()
    await until_counted(failures, "keys_reload", poll_forever(boom_async, 0.0, "keys", failures))


async def test_reload_retry_counts_a_crashed_reload(caplog: pytest.LogCaptureFixture) -> None:
    failures = RecordedFailures()
    running = retry_with_backoff(
        boom_async, lambda: True, "keys", failures, first_seconds=0.0, max_seconds=0.0
    )
    await until_counted(failures, "keys_reload", running)
    crashed = [r for r in caplog.records if r.message == "reload_failed"]
    assert crashed and crashed[0].__dict__["what"] == "keys"


async def test_folder_watch_counts_a_crashed_reload(tmp_path: Path) -> None:
    failures = RecordedFailures()
    edits = iter(range(1_000_000))

    def edit() -> None:
        (tmp_path / "data.json").write_text(str(next(edits)))

    running = watch_directory(tmp_path, boom, "policy bundle", failures)
    await until_counted(failures, "policy_bundle_reload", running, times=1, poke=edit)


async def test_a_folder_watch_sees_an_edit_made_as_soon_as_it_started(tmp_path: Path) -> None:
    """The watch begins in the watching task's first step: an edit made as soon as that step
    has run is seen. With the folder first resolved in a thread, the step ended at the thread
    hop and the edit came before the watch: never seen, nor reloaded until the next edit (and a
    test's edit right after a start waited out its give-up at load)."""
    changed = asyncio.Event()
    task = asyncio.create_task(watch_directory(tmp_path, changed.set, "policy", RecordedFailures()))
    try:
        await asyncio.sleep(0)  # the watching task's first step runs
        (tmp_path / "data.json").write_text("{}")
        await asyncio.wait_for(changed.wait(), 30)  # a hang guard: debounce is 0.3 s
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def boom_async() -> bool:
    raise RuntimeError("a bug in the reload")


async def test_sighup_reload_counts_a_crashed_reloader_and_runs_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failures = RecordedFailures()
    ran: list[str] = []

    async def keys() -> bool:
        ran.append("keys")
        return True

    await reload_now([boom_async, keys, boom_async], failures)
    assert failures.counts == {"sighup_reload": 2}
    assert ran == ["keys"]
    crashed = [r for r in caplog.records if r.message == "reload_failed"]
    assert [r.__dict__["what"] for r in crashed] == ["sighup", "sighup"]
    assert all(r.exc_info for r in crashed)


def test_the_service_counts_loop_failures_in_its_metrics() -> None:
    """build_observability (the composition root's) wires LoopFailures to the counter."""
    observability = build_observability(Settings())
    assert observability.metrics is not None
    loop = Loop("status_flush", "status_flush_failed", logging.getLogger(__name__))
    for _ in range(2):
        try:
            boom()
        except RuntimeError:
            observability.loop_failures.failed(loop)
    body, _ = observability.metrics.render()
    assert b'sekisho_background_failures_total{loop="status_flush"} 2.0' in body


def test_with_metrics_off_a_failure_is_still_logged(caplog: pytest.LogCaptureFixture) -> None:
    observability = build_observability(Settings(metrics={"enabled": False}))
    try:
        boom()
    except RuntimeError:
        observability.loop_failures.failed(Loop("x", "x_failed", logging.getLogger(__name__)))
    assert [r.message for r in caplog.records] == ["x_failed"]
    assert caplog.records[0].exc_info is not None


async def test_repeat_goes_on_after_a_failure_and_waits_first_when_asked() -> None:
    steps: list[str] = []
    failures = RecordedFailures()
    loop = Loop("demo", "demo_failed", logging.getLogger(__name__))

    async def step() -> None:
        steps.append("step")
        if len(steps) % 2:
            raise RuntimeError("every other step fails")

    delays: list[str] = []

    def delay() -> float:
        delays.append("sleep")
        return 0.0

    task = asyncio.create_task(failures.repeat(loop, step, delay, wait_first=True))
    for _ in range(GIVE_UP_ROUNDS):
        if len(steps) >= 4:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(delays) >= len(steps) >= 4  # a sleep before the first step
    assert failures.counts["demo"] == (len(steps) + 1) // 2


def test_a_metrics_child_per_loop_name(tmp_path: Path) -> None:
    metrics = Metrics(max_audiences=5)
    metrics.background_failed("key_rotation")
    metrics.background_failed("jwks_refresh")
    metrics.background_failed("jwks_refresh")
    body = metrics.render()[0].decode()
    assert 'sekisho_background_failures_total{loop="key_rotation"} 1.0' in body
    assert 'sekisho_background_failures_total{loop="jwks_refresh"} 2.0' in body


_WORKER = """
import sys
from sekisho.metrics import MULTIPROC_ENV, Metrics

metrics = Metrics(max_audiences=5, multiprocess_dir=sys.argv[1])
metrics.background_failed("status_flush")
metrics.background_failed("status_flush")
"""


def test_workers_count_loop_failures_into_the_shared_folder(tmp_path: Path) -> None:
    """server.workers > 1: whichever worker answers the scrape reports every worker's count."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    for _ in range(2):  # two worker processes, one after the other
        subprocess.run([sys.executable, "-c", _WORKER, str(folder)], env=env, check=True)
    body = Metrics(max_audiences=5, multiprocess_dir=str(folder)).render()[0].decode()
    assert 'sekisho_background_failures_total{loop="status_flush"} 4.0' in body
