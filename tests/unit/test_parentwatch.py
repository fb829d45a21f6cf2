"""`sekisho serve --exit-with-parent` (parentwatch.py): the parent's blocked signals are read from
/proc, and the service stops itself when its parent is handling a stop signal or is gone."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sekisho.parentwatch import blocked_signals, parent_stopping

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# A stand-in for GNU make's fatal-signal handler: SIGINT blocked while it waits for its child.
BLOCKER = textwrap.dedent(
    """
    import signal, sys, time
    signal.pthread_sigmask(signal.SIG_BLOCK, {int(sys.argv[1])})
    print("blocked", flush=True)
    time.sleep(60)
    """
)


@contextlib.contextmanager
def _blocking(signum: int) -> Iterator[int]:
    """The pid of a process that has `signum` blocked, until the block ends."""
    command = [sys.executable, "-c", BLOCKER, str(signum)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stdout.readline() == "blocked\n"
            yield process.pid
        finally:
            process.kill()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_blocked_stop_signal_is_seen(signum: signal.Signals) -> None:
    with _blocking(signum) as pid:
        assert signum in blocked_signals(pid)


def test_a_parent_that_blocks_nothing_of_note_is_not_stopping() -> None:
    with _blocking(signal.SIGUSR1) as pid:
        assert signal.SIGUSR1 in blocked_signals(pid)
        assert not {signal.SIGINT, signal.SIGTERM} & blocked_signals(pid)
    assert not parent_stopping(os.getppid())  # pytest's parent is not stopping


def test_a_vanished_process_has_no_blocked_signals() -> None:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as process:
        process.wait()
    assert blocked_signals(process.pid) == frozenset()


# The watch itself, in a child whose "parent" is a process we control: SIGINT blocked there
# (as in make's handler) must make the child drain, i.e. exit on its own SIGTERM. The parent
# blocks it once the child's watch has begun (a pipe), not after a fixed 0.3 s: a child that
# began it later would take the block for the parent's usual state and never stop.
WATCHED = textwrap.dedent(
    """
    import os, signal, time
    from sekisho.parentwatch import watch_parent
    watching, tell = os.pipe()
    child = os.fork()
    if child == 0:
        watch_parent(poll_seconds=0.02)
        print("watching", flush=True)
        os.write(tell, b"1")
        time.sleep(30)
        os._exit(0)
    os.close(tell)
    os.read(watching, 1)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # make's handler starts
    _, status = os.waitpid(child, 0)
    print("child", "signal" if os.WIFSIGNALED(status) else "exit", os.WTERMSIG(status), flush=True)
    """
)


def test_the_watch_stops_the_service_when_its_parent_handles_sigint() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WATCHED],
        capture_output=True,
        text=True,
        timeout=60,  # a give-up only, past the child's own 30 s sleep
        check=False,
    )
    # Killed by SIGTERM (the watch), not ended by its own 30 s sleep ("child exit 0"): what the
    # elapsed < 20 s check told apart, told by the child's status instead.
    assert done.stdout.splitlines() == ["watching", f"child signal {int(signal.SIGTERM)}"]


# A supervisor that reads signals through a signalfd keeps them blocked from the start: that is
# its normal state, not a stop; only its exit is. It exits once the child has printed after a
# second of polls (a pipe), not after a fixed 3 s: a child stalled past them would see the exit
# first.
SUPERVISED = textwrap.dedent(
    """
    import os, signal, time
    from sekisho.parentwatch import watch_parent
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    served, tell = os.pipe()
    child = os.fork()
    if child == 0:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        watch_parent(poll_seconds=0.02)
        time.sleep(1.0)
        print("still serving", flush=True)
        os.write(tell, b"1")
        time.sleep(30)
        os._exit(0)
    os.close(tell)
    os.read(served, 1)  # the child served a second of polls (or died: end of file)
    """
)


def test_a_parent_that_always_blocks_stop_signals_is_not_taken_for_stopping() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SUPERVISED],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )  # returns once the child exited too: it holds our stdout
    assert done.stdout.splitlines() == ["still serving"]


def test_the_watch_stops_the_service_when_its_parent_is_gone() -> None:
    # The parent exits once the child's watch has begun (not after a fixed 0.3 s: a child that
    # had not started it by then found itself already re-parented and watched its new parent).
    orphan = textwrap.dedent(
        """
        import os, sys, time
        from sekisho.parentwatch import watch_parent
        started, tell = os.pipe()
        if os.fork() == 0:
            watch_parent(poll_seconds=0.02)
            print(os.getpid(), flush=True)
            os.write(tell, b"1")
            time.sleep(120)
            os._exit(0)
        os.read(started, 1)
        """
    )
    # The orphan holds our stdout pipe: run() returns once it has exited (or times out).
    done = subprocess.run(
        [sys.executable, "-c", orphan], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 30  # a give-up, well short of the orphan's 120 s sleep
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid), "the orphaned watcher kept running"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
