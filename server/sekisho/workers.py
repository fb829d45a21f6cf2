"""`server.workers = N`: N worker processes sharing the gRPC and HTTP ports, one supervisor.

Why multiprocessing's "fork" context, as grpc's examples/python/multiprocessing server does: the
supervisor creates no gRPC server, channel, thread or event loop, so forking it is safe (gRPC's
fork caveats are about live gRPC objects), and each worker inherits the validated Settings
without re-reading the config or pickling anything. Every worker then builds its own service —
gRPC server, event loop, keyring, policy engine, file watchers and KMS polls — and binds the
shared ports with SO_REUSEPORT, so the kernel spreads connections over the workers. Key and
policy changes reach every worker through its own watcher (reload.py); automatic rotation stays
one per period because each check runs under the keystore's cross-process lock (rotation.py).

The supervisor restarts a worker that crashes after it served (with exponential backoff, counted
in sekisho_worker_restarts). A worker of the first start that fails before it is up — bad keys,
bad policy, a busy port — stops the whole pod with that worker's error: restarting it would only
fail again. A *replacement* that fails before it is up never takes the healthy workers down
(degrade, never cascade: docs/security.md issue 19 class 5): it is retried with the same
backoff while the others serve. SIGTERM/SIGINT are forwarded to every worker, which drains for
shutdown_grace_seconds; workers still running after that (plus a margin) are killed. SIGHUP is
forwarded too: each worker reloads its keys and policy at once (docs/operators.md "Hot reload").
An exited worker's metrics files are folded into archives and deleted (metricsdir.py).
"""

import contextlib
import contextvars
import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType

from sekisho.backoff import Backoff
from sekisho.config import Settings
from sekisho.logs import configure_logging

log = logging.getLogger(__name__)

EXIT_START_FAILED = 3
STOP_MARGIN_SECONDS = 5.0
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
RESTART_BACKOFF = Backoff(BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS)
STABLE_AFTER_SECONDS = 60.0  # a worker up this long resets its crash backoff
POLL_SECONDS = 0.2
READY = "ready"
FAILED = "failed"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _exit_with_supervisor(supervisor_pid: int) -> None:
    """Never outlive the supervisor: a worker orphaned by a SIGKILLed or crashed supervisor would
    keep serving on the shared ports with nobody to restart, drain or stop it. On Linux the kernel
    sends the worker SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG), and the worker drains
    as on any SIGTERM; the getppid check closes the race with a parent that died before prctl."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("worker_parent_death_signal_unset", extra={"errno": ctypes.get_errno()})
    if os.getppid() != supervisor_pid:
        os._exit(0)


def exit_with_parent() -> None:
    """Never outlive the process that started this one (the dev IdP under `make run`, whose
    parent execs into `sekisho serve`): SIGTERM when it exits, as for a worker."""
    _exit_with_supervisor(os.getppid())


def _worker_main(settings: Settings, index: int, report: Connection, supervisor_pid: int) -> None:
    """A worker process: serve until SIGTERM; tell the supervisor when up or why it failed."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # not the supervisor's handler, until asyncio's
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload before the service is up: nothing
    _exit_with_supervisor(supervisor_pid)
    import asyncio

    from sekisho.service import run_until_signalled

    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id, worker=index)

    def started() -> None:
        report.send((READY, ""))

    try:
        asyncio.run(run_until_signalled(settings, request_id, reuse_port=True, on_started=started))
    except Exception as exc:  # the process boundary: report why, then exit non-zero
        log.error("worker_start_failed", extra={"error": str(exc)})
        with contextlib.suppress(OSError):
            report.send((FAILED, f"{type(exc).__name__}: {exc}"))
        sys.exit(EXIT_START_FAILED)


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    report: Connection
    started_at: float
    up: bool = False
    replacement: bool = False


class Supervisor:
    """Starts N workers, restarts crashed ones, forwards shutdown; `run()` returns the exit code."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        *,
        on_restart: Callable[[], None] = lambda: None,
        on_exit: Callable[[int], None] = lambda pid: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._count = count
        self._on_restart = on_restart
        self._on_exit = on_exit
        self._monotonic = monotonic
        self._context = multiprocessing.get_context("fork")
        self._workers: dict[int, _Worker] = {}
        self._crashes: dict[int, int] = {}
        self._restart_at: dict[int, float] = {}
        self._stopping = False
        self._reload = False
        self._exit_code = 0

    def request_stop(self, signum: int = signal.SIGTERM, _: FrameType | None = None) -> None:
        """Begin graceful shutdown (the SIGTERM/SIGINT handler)."""
        self._stopping = True

    def request_reload(self, signum: int = signal.SIGHUP, _: FrameType | None = None) -> None:
        """Forward a reload to every worker (the SIGHUP handler)."""
        self._reload = True

    def run(self) -> int:
        """Supervise until stopped or a worker fails to start; 0, or the failure's exit code."""
        for index in range(self._count):
            self._start(index)
        log.info("workers_started", extra={"workers": self._count})
        while not self._stopping:
            self._poll()
            self._restart_due()
            self._forward_reload()
        self._stop_all()
        return self._exit_code

    def _forward_reload(self) -> None:
        if not self._reload:
            return
        self._reload = False
        log.info("workers_reloading", extra={"workers": len(self._workers)})
        for worker in self._workers.values():
            if worker.process.is_alive() and worker.process.pid:
                os.kill(worker.process.pid, signal.SIGHUP)

    def _start(self, index: int, *, replacement: bool = False) -> None:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker_main,
            args=(self._settings, index, send, os.getpid()),
            name=f"sekisho-worker-{index}",
        )
        process.start()
        send.close()
        self._workers[index] = _Worker(
            index, process, receive, self._monotonic(), replacement=replacement
        )
        log.info("worker_started", extra={"worker": index, "worker_pid": process.pid})

    def _poll(self) -> None:
        waitables: list[object] = [w.process.sentinel for w in self._workers.values()]
        waitables += [w.report for w in self._workers.values() if not w.up]
        multiprocessing.connection.wait(waitables, timeout=POLL_SECONDS)  # type: ignore[arg-type]
        for worker in list(self._workers.values()):
            self._read_report(worker)
            if not worker.process.is_alive():
                self._exited(worker)

    def _read_report(self, worker: _Worker) -> None:
        with contextlib.suppress(EOFError, OSError):
            while worker.report.poll():
                kind, detail = worker.report.recv()
                if kind == READY:
                    worker.up = True
                elif kind == FAILED:
                    log.error(
                        "worker_start_failed", extra={"worker": worker.index, "error": detail}
                    )

    def _exited(self, worker: _Worker) -> None:
        worker.process.join()
        worker.report.close()
        del self._workers[worker.index]
        pid, code = worker.process.pid or 0, worker.process.exitcode
        self._on_exit(pid)
        if self._stopping:
            return
        if not worker.up and not worker.replacement:
            log.error("worker_never_started", extra={"worker": worker.index, "exit_code": code})
            self._exit_code = EXIT_START_FAILED
            self._stopping = True
            return
        stable = worker.up and self._monotonic() - worker.started_at >= STABLE_AFTER_SECONDS
        crashes = 1 if stable else self._crashes.get(worker.index, 0) + 1
        self._crashes[worker.index] = crashes
        delay = RESTART_BACKOFF.ceiling(crashes - 1)
        self._restart_at[worker.index] = self._monotonic() + delay
        event = "worker_crashed" if worker.up else "worker_restart_failed"
        log.warning(
            event, extra={"worker": worker.index, "exit_code": code, "restart_in_seconds": delay}
        )

    def _restart_due(self) -> None:
        now = self._monotonic()
        for index, when in list(self._restart_at.items()):
            if when <= now and not self._stopping:
                del self._restart_at[index]
                self._on_restart()
                self._start(index, replacement=True)

    def _stop_all(self) -> None:
        grace = self._settings.server.shutdown_grace_seconds + STOP_MARGIN_SECONDS
        for worker in self._workers.values():
            if worker.process.is_alive():
                os.kill(worker.process.pid or 0, signal.SIGTERM)
        deadline = self._monotonic() + grace
        for worker in self._workers.values():
            worker.process.join(max(0.0, deadline - self._monotonic()))
            if worker.process.is_alive():
                log.warning("worker_killed", extra={"worker": worker.index})
                worker.process.kill()
                worker.process.join()
            self._on_exit(worker.process.pid or 0)
            worker.report.close()
        self._workers.clear()
        log.info("workers_stopped", extra={"exit_code": self._exit_code})


def supervise(settings: Settings) -> int:
    """`sekisho serve` with server.workers != 1: run the workers, return the exit code."""
    metrics_dir = ""
    if settings.metrics.enabled:
        # Before prometheus-client is imported anywhere: it picks its value store at import.
        if "prometheus_client" in sys.modules:
            raise RuntimeError("prometheus_client was imported before the supervisor set it up")
        metrics_dir = tempfile.mkdtemp(prefix="sekisho-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        supervisor = _build_supervisor(settings, metrics_dir)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, supervisor.request_stop)
        signal.signal(signal.SIGHUP, supervisor.request_reload)
        return supervisor.run()
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _build_supervisor(settings: Settings, metrics_dir: str) -> Supervisor:
    count = settings.server.worker_count
    if not metrics_dir:
        return Supervisor(settings, count)
    from prometheus_client import Counter

    from sekisho.metrics import WORKER_RESTARTS, WORKER_RESTARTS_HELP
    from sekisho.metricsdir import retire_process_files

    # Unregistered: in multiprocess mode its value lives in the folder every worker's /metrics
    # reads, so the supervisor's count is part of the pod's exposition.
    restarts = Counter(WORKER_RESTARTS, WORKER_RESTARTS_HELP, registry=None)
    return Supervisor(
        settings,
        count,
        on_restart=restarts.inc,
        on_exit=lambda pid: retire_process_files(metrics_dir, pid),
    )
