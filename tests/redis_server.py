"""A real redis-server (the Debian package, `make redis`) on 127.0.0.1:<free port>."""

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A running redis-server; `stop()` makes it unreachable for fail-closed tests."""

    port: int
    process: "subprocess.Popen[bytes]"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _wait_until_answering(port: int, process: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):  # up (and wants AUTH)
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not answer within 15 s")


def start_redis(password: str = "") -> RedisServer:
    """`password`: the default user's (requirepass), for authentication tests."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run `make redis`")
    port = _free_port()
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
    _wait_until_answering(port, process)
    return RedisServer(port, process)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server per test (cheap: ~10 ms), stopped afterwards."""
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()
