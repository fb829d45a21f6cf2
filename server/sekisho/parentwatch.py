"""`sekisho serve --exit-with-parent` (what `make run` starts): drain and exit when the process
that started this one exits, or is being stopped by a signal it keeps to itself.

Why: GNU make passes SIGTERM on to its children but not SIGINT. `kill -INT <pid of make>` runs
make's fatal-signal handler, which waits for its children to exit before make dies, with SIGINT
blocked; the service is never told, keeps serving, and make hangs. (Ctrl-C works because the
terminal signals the whole process group.) A handler runs with its own signal blocked, and Linux
shows a process's blocked set in /proc/PID/status (`SigBlk`); make blocks none of these signals
otherwise once its last recipe line runs. So a thread looks at the parent every POLL_SECONDS:
gone (re-parented), or inside a handler for SIGHUP/SIGINT/SIGQUIT/SIGTERM, and it sends this
process SIGTERM, which drains like any SIGTERM (or, before the handlers are up, ends the
start-up). Without /proc only the parent's exit is noticed.

Only make is known never to block those signals otherwise. Any other parent may keep them
blocked for good (systemd and other supervisors read signals through a signalfd), so for it only
a signal it did not block when the watch began counts.
"""

import os
import signal
import threading
from pathlib import Path

POLL_SECONDS = 0.1
STOPPING = frozenset({signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM})


def blocked_signals(pid: int) -> frozenset[int]:
    """The signals `pid` has blocked (empty when /proc cannot tell)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except OSError:
        return frozenset()
    for line in status.splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split(":", 1)[1].strip(), 16)
            return frozenset(n for n in range(1, 65) if mask & (1 << (n - 1)))
    return frozenset()


def parent_stopping(parent: int, usual: frozenset[int] = frozenset()) -> bool:
    """Whether `parent` has exited (we were re-parented) or blocks a stop signal beyond those it
    blocks as `usual`."""
    return os.getppid() != parent or bool(STOPPING & blocked_signals(parent) - usual)


def _usually_blocked(parent: int) -> frozenset[int]:
    try:
        name = Path(f"/proc/{parent}/comm").read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    return frozenset() if name in ("make", "gmake") else STOPPING & blocked_signals(parent)


def watch_parent(poll_seconds: float = POLL_SECONDS) -> threading.Thread:
    """Start the watch (a daemon thread for the life of the process) on the current parent."""
    parent = os.getppid()
    usual = _usually_blocked(parent)
    thread = threading.Thread(
        target=_watch, args=(parent, usual, poll_seconds), name="sekisho-parent-watch", daemon=True
    )
    thread.start()
    return thread


def _watch(parent: int, usual: frozenset[int], poll_seconds: float) -> None:
    stopped = threading.Event()  # never set: the thread ends with the process
    while not stopped.wait(poll_seconds):
        if parent_stopping(parent, usual):
            os.kill(os.getpid(), signal.SIGTERM)
            return
