"""Servers started as subprocesses on loopback, for tests and bench/: a free port, a wait until
the started process answers, and a stop that never leaves it running.

Standard library only, and no import of the rest of tests/, so bench/ scripts run standalone
import it too (with the repository root on sys.path).
"""

import asyncio
import itertools
import random
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

Process = subprocess.Popen[bytes]


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Whether the server closed the connection within `seconds` (EOF or reset)."""
    try:
        while await asyncio.wait_for(reader.read(4096), seconds):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


class ServerStartError(RuntimeError):
    """A started server exited, or did not answer in time."""


# Ports handed out by free_port(): below the kernel's ephemeral range, walked from a random start.
_BELOW_EPHEMERAL = 10_000
_LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ports_to_hand_out() -> Iterator[int]:
    """Ports no bind(0) and no outgoing connection is given: [low - 10,000, low) of the
    ephemeral range, from a random start, each once per lap; the ephemeral range itself when
    it leaves no room below."""
    try:
        low = int(_LOCAL_PORT_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768  # Linux's default
    if low - _BELOW_EPHEMERAL < 1024:
        return iter(())
    first = low - _BELOW_EPHEMERAL
    start = random.randrange(_BELOW_EPHEMERAL)  # noqa: S311 (spreads concurrent test runs)
    return itertools.cycle(first + (start + i) % _BELOW_EPHEMERAL for i in range(_BELOW_EPHEMERAL))


_HANDED_OUT = _ports_to_hand_out()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (closed again on return), for a server
    a subprocess binds later.

    Not a port of the ephemeral range: there the kernel gives bind(0) (every in-process server,
    this run's and any other's on the host) and outgoing connections their ports, so one could
    take it before the subprocess binds (EADDRINUSE, or a foreign server answering). Below it,
    only another free_port() could, and each run walks the range from its own random start."""
    for port in itertools.islice(_HANDED_OUT, 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use (or held by a listener elsewhere): the next one
            return port
    with socket.socket() as sock:  # no room below the ephemeral range
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str, *, timeout: float = 1.0, context: ssl.SSLContext | None = None) -> bool:
    """Whether GET `url` (on loopback) answers 200 now."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, timed out, or an HTTP error status
        return False


def wait_until(
    ready: Callable[[], bool],
    *,
    name: str,
    seconds: float,
    interval: float,
    process: Process | None = None,
    detail: Callable[[], str] = str,
) -> None:
    """Return once `ready()`, polled every `interval` (while `process`, when given, runs).

    Raises: ServerStartError when the process exits first or `seconds` pass; its message names
    `name` and ends with `detail()` (a log tail, say).
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerStartError(_with_detail(f"{name} exited with {process.returncode}", detail))
        if ready():
            return
        time.sleep(interval)
    raise ServerStartError(_with_detail(f"{name} did not answer within {seconds:g} s", detail))


def _with_detail(message: str, detail: Callable[[], str]) -> str:
    text = detail()
    return f"{message}: {text}" if text else message


def stop_process(process: Process, *, timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not exited after `timeout` seconds; reaped either way."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
