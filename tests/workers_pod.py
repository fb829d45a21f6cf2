"""A real `sekisho serve` pod with `server.workers = 2` as subprocesses, for the integration tests
that need several workers (test_workers.py, test_workers_degrade.py, test_revocation_workers.py):
its config, start, wait until both workers serve, and stop (never leaving a worker behind)."""

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import jwt
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.devidp import DevIdentityProvider
from sekisho.signing.filestore import FileKeyStore

from tests.harness import POLICIES
from tests.integration.conftest import AGENT_AUDIENCE
from tests.loopback import free_port, stop_process
from tests.opa import with_opa_on_path

SEKISHO = [sys.executable, "-m", "sekisho"]
# A channel of its own subchannel pool opens its own TCP connection, which the kernel's
# SO_REUSEPORT hash gives to either worker. Without it, grpc's process-wide pool hands a new channel
# the connection a just-closed channel left behind (12 of 50 "fresh" channels here), so a phase's
# calls all went to one worker more often than the 2**-(n-1) the tests assume.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
# A hang guard on each call to the pod (loopback only), not a bound: at 5 s (2 s for HTTP) a
# scheduling stall on a loaded host (seconds: bench/results/first_call.md) failed a call.
CALL_TIMEOUT_SECONDS = 30
CRM_AS = "https://crm-as.example.com"


@dataclass
class Pod:
    """A `sekisho serve` supervisor with its workers; stderr (JSON lines) goes to `log`."""

    process: "subprocess.Popen[bytes]"
    config: Path
    policies: Path
    log: Path
    grpc_port: int
    http_port: int
    metrics_port: int = 0

    def events(self, name: str | None = None) -> list[dict[str, object]]:
        # Complete lines only: a worker may be writing the last one while it is read.
        lines = self.log.read_text(encoding="utf-8").split("\n")[:-1]
        parsed = [json.loads(line) for line in lines if line.startswith("{")]
        return [line for line in parsed if name is None or line.get("event") == name]

    def worker_pids(self) -> set[int]:
        return {int(str(e["pid"])) for e in self.events("service_started") if "pid" in e}

    def http_get(self, path: str) -> tuple[int, bytes]:
        # /metrics is on the admin listener ([metrics] listen), shared by the workers like the
        # public one; everything else on the public listener.
        port = self.metrics_port if path == "/metrics" else self.http_port
        url = f"http://127.0.0.1:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=CALL_TIMEOUT_SECONDS) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, b""

    async def exchange(self, token: str, request_id: str) -> tuple[str, str]:
        """One ExchangeToken on a fresh channel (a new connection): ("granted", kid) or
        ("refused", reason)."""
        target = f"127.0.0.1:{self.grpc_port}"
        async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
            stub = pb_grpc.TokenExchangeServiceStub(channel)
            request = pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS)
            try:
                response = await stub.ExchangeToken(
                    request, metadata=(("x-request-id", request_id),), timeout=CALL_TIMEOUT_SECONDS
                )
            except grpc.aio.AioRpcError as error:
                return "refused", str(error.code())
        return "granted", str(jwt.get_unverified_header(response.access_token)["kid"])

    def served_by(self, prefix: str) -> dict[str, int]:
        """request id → pid of the worker that logged its outcome."""
        served = {}
        for event in self.events():
            request_id = str(event.get("request_id", ""))
            if request_id.startswith(prefix) and "pid" in event:
                served[request_id] = int(str(event["pid"]))
        return served


async def within(probe: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await probe():
        assert time.monotonic() < deadline, f"not reached within {seconds} s"
        await asyncio.sleep(0.1)


def workers_config(tmp_path: Path, idp: DevIdentityProvider, policies: Path, **server: str) -> Path:
    grpc_port, http_port = free_port(), free_port()
    extra = "".join(f"{key} = {value}\n" for key, value in server.items())
    config = tmp_path / "sekisho.toml"
    config.write_text(
        f"""
[server]
grpc_listen = "127.0.0.1:{grpc_port}"
http_listen = "127.0.0.1:{http_port}"
issuer = "https://sekisho.test"
workers = 2
shutdown_grace_seconds = 2.0
{extra}
[[trust.issuers]]
issuer = "{idp.issuer}"
discovery_url = "{idp.issuer}/.well-known/openid-configuration"
audiences = ["{AGENT_AUDIENCE}"]

[policy]
path = "{policies}"

[keys]
dir = "keys"
poll_seconds = 0.5
""",
        encoding="utf-8",
    )
    return config


def _ports(config: Path) -> tuple[int, int]:
    text = config.read_text(encoding="utf-8")
    ports = [
        int(line.rsplit(":", 1)[1].strip('"')) for line in text.splitlines() if "_listen" in line
    ]
    return ports[0], ports[1]


def start_pod(
    tmp_path: Path, config: Path, policies: Path, env: Mapping[str, str] | None = None
) -> Pod:
    """`sekisho serve --config` in `tmp_path`, /metrics on a free port of its own; `env` adds to
    the environment. Returns at once (see `running_pod` to wait for the workers)."""
    log = tmp_path / "serve.log"
    metrics_port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*SEKISHO, "serve", "--config", str(config)],
            cwd=tmp_path,
            stderr=sink,
            env=with_opa_on_path(
                {
                    **os.environ,
                    "PYTHONUNBUFFERED": "1",
                    "SEKISHO_METRICS__LISTEN": f"127.0.0.1:{metrics_port}",
                    **(env or {}),
                }
            ),
        )
    grpc_port, http_port = _ports(config)
    return Pod(process, config, policies, log, grpc_port, http_port, metrics_port)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pod(pod: Pod) -> None:
    stop_process(pod.process, timeout=15)
    for pid in pod.worker_pids():  # never leave a worker behind, whatever the test did
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def pod_folder(tmp_path: Path) -> Path:
    """The repository's policies copied into `tmp_path` (so a test may edit them) and a fresh
    keystore in keys/; returns the policies folder."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    FileKeyStore(tmp_path / "keys").init("ES256", int(time.time()))
    return policies


@contextlib.asynccontextmanager
async def running_pod(
    tmp_path: Path, config: Path, policies: Path, env: Mapping[str, str] | None = None
) -> AsyncIterator[Pod]:
    """A started pod once both workers serve; stopped (and every worker gone) on exit."""
    running = start_pod(tmp_path, config, policies, env)

    async def both_up() -> bool:
        assert running.process.poll() is None, running.log.read_text()
        return len(running.worker_pids()) == 2

    try:
        await within(both_up, 30)
        yield running
    finally:
        stop_pod(running)
