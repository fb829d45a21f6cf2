"""A real redis-server (the Debian package, `make redis`) on 127.0.0.1:<free port>."""

import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.loopback import free_port, stop_process, wait_until


@dataclass
class RedisServer:
    """A running redis-server; `stop()` makes it unreachable for fail-closed tests."""

    port: int
    process: "subprocess.Popen[bytes]"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        stop_process(self.process, timeout=10)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up (and wants AUTH)
    except OSError:
        return False


def start_redis(password: str = "") -> RedisServer:
    """`password`: the default user's (requirepass), for authentication tests."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make redis`")
    port = free_port()
    auth = ["--requirepass", password] if password else []
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            *auth,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ready = lambda: _answers_ping(port)  # noqa: E731
    # A hang guard (as wait_http's 60 s, e8fff7d): a start is milliseconds on a quiet host.
    wait_until(ready, name="redis-server", process=process, seconds=60, interval=0.05)
    return RedisServer(port, process)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server per test (cheap: ~10 ms), stopped afterwards."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()
