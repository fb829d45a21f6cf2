"""`server.workers = 2` as real processes: both workers share the ports and serve, a key promotion
and a policy data change reach both, /metrics on the shared port reports the whole pod, a killed
worker is restarted, SIGTERM drains every worker, and a worker that cannot start stops the pod."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import jwt
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.devidp import DevIdentityProvider
from sekisho.signing.filestore import FileKeyStore

from tests.harness import POLICIES
from tests.integration.conftest import AGENT_AUDIENCE

pytestmark = pytest.mark.integration

SEKISHO = [sys.executable, "-m", "sekisho"]
CRM_AS = "https://crm-as.example.com"
PICKUP_SECONDS = 10.0
REQUESTS = 24  # fresh channels per phase: P(all on one of 2 workers) = 2**-23


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
        lines = self.log.read_text(encoding="utf-8").splitlines()
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
            with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, b""

    async def exchange(self, token: str, request_id: str) -> tuple[str, str]:
        """One ExchangeToken on a fresh channel (a new connection): ("granted", kid) or
        ("refused", reason)."""
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = pb_grpc.TokenExchangeServiceStub(channel)
            request = pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS)
            try:
                response = await stub.ExchangeToken(
                    request, metadata=(("x-request-id", request_id),), timeout=5
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


async def _within(probe: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await probe():
        assert time.monotonic() < deadline, f"not reached within {seconds} s"
        await asyncio.sleep(0.1)


def _write_config(tmp_path: Path, idp: DevIdentityProvider, policies: Path, **server: str) -> Path:
    grpc_port, http_port = _free_port(), _free_port()
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


def _start(tmp_path: Path, config: Path, policies: Path) -> Pod:
    log = tmp_path / "serve.log"
    metrics_port = _free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*SEKISHO, "serve", "--config", str(config)],
            cwd=tmp_path,
            stderr=sink,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "SEKISHO_METRICS__LISTEN": f"127.0.0.1:{metrics_port}",
            },
        )
    grpc_port, http_port = _ports(config)
    return Pod(process, config, policies, log, grpc_port, http_port, metrics_port)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pod: Pod) -> None:
    if pod.process.poll() is None:
        pod.process.terminate()
        try:
            pod.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pod.process.kill()
            pod.process.wait(timeout=10)
    for pid in pod.worker_pids():  # never leave a worker behind, whatever the test did
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
async def pod(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Pod]:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    FileKeyStore(tmp_path / "keys").init("ES256", int(time.time()))
    running = _start(tmp_path, _write_config(tmp_path, dev_idp, policies), policies)

    async def both_up() -> bool:
        assert running.process.poll() is None, running.log.read_text()
        return len(running.worker_pids()) == 2

    try:
        await _within(both_up, 30)
        yield running
    finally:
        _stop(running)


async def _phase(pod: Pod, token: str, prefix: str) -> list[tuple[str, str]]:
    return [await pod.exchange(token, f"{prefix}{i}") for i in range(REQUESTS)]


async def test_both_workers_serve_and_pick_up_key_and_policy_changes(
    pod: Pod, dev_idp: DevIdentityProvider
) -> None:
    token = dev_idp.token({"sub": "alice", "aud": AGENT_AUDIENCE, "groups": ["sales"]}, ttl=600)
    first = await _phase(pod, token, "before-")
    assert {outcome for outcome, _ in first} == {"granted"}
    old_kid = first[0][1]
    assert set(pod.served_by("before-").values()) == pod.worker_pids()  # both workers served

    promote = [*SEKISHO, "keys", "promote", "--config", str(pod.config)]
    promote += ["--force", "--reason", "workers test"]
    done = await asyncio.to_thread(
        subprocess.run, promote, capture_output=True, timeout=60, cwd=pod.config.parent
    )
    assert done.returncode == 0, done.stderr

    rounds: list[str] = []

    async def promoted() -> bool:
        rounds.append(f"promoted-{len(rounds)}-")
        results = await _phase(pod, token, rounds[-1])
        return all(outcome == "granted" and kid != old_kid for outcome, kid in results)

    await _within(promoted, PICKUP_SECONDS)
    assert len(set(pod.served_by(rounds[-1]).values())) == 2  # the new key on both workers

    denylist = pod.policies / "data" / "denylist.json"
    denylist.write_text(
        json.dumps({"sekisho": {"denylist": {"users": {"alice": {}}, "callers": {}}}}),
        encoding="utf-8",
    )

    async def denied() -> bool:
        rounds.append(f"denied-{len(rounds)}-")
        results = await _phase(pod, token, rounds[-1])
        return all(outcome == "refused" for outcome, _ in results)

    await _within(denied, PICKUP_SECONDS)
    assert len(set(pod.served_by(rounds[-1]).values())) == 2  # the new data on both workers


async def test_metrics_cover_the_pod_and_a_crashed_worker_is_restarted(
    pod: Pod, dev_idp: DevIdentityProvider
) -> None:
    token = dev_idp.token({"sub": "alice", "aud": AGENT_AUDIENCE, "groups": ["sales"]}, ttl=600)
    await _phase(pod, token, "metrics")
    status, body = await asyncio.to_thread(pod.http_get, "/metrics")
    assert status == 200
    text = body.decode()
    # Whichever worker answered, the count is the pod's: both workers' exchanges summed.
    assert (
        f'sekisho_exchanges_total{{audience="{CRM_AS}",entrypoint="grpc",'
        f'outcome="granted",reason=""}} {float(REQUESTS)}' in text
    )
    assert "sekisho_worker_restarts_total 0.0" in text

    victim = min(pod.worker_pids())
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        return len(pod.worker_pids() - {victim}) == 2

    await _within(replaced, 15)
    assert [e["exit_code"] for e in pod.events("worker_crashed")] == [-signal.SIGKILL]
    _, body = await asyncio.to_thread(pod.http_get, "/metrics")
    assert "sekisho_worker_restarts_total 1.0" in body.decode()

    pod.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(pod.process.wait, 20) == 0
    stopped = {int(str(e["pid"])) for e in pod.events("service_stopped")}
    assert stopped == pod.worker_pids() - {victim}  # every live worker drained and stopped
    assert pod.events()[-1]["event"] == "workers_stopped"


async def test_workers_exit_when_the_supervisor_is_killed(pod: Pod) -> None:
    """A SIGKILLed supervisor (OOM killer) must not leave workers serving the shared ports."""
    workers = pod.worker_pids()
    assert all(_alive(pid) for pid in workers)
    pod.process.kill()
    pod.process.wait(timeout=10)

    async def all_gone() -> bool:
        return not any(_alive(pid) for pid in workers)

    await _within(all_gone, 15)
    stopped = {int(str(e["pid"])) for e in pod.events("service_stopped")}
    assert stopped == workers  # each drained on its parent-death SIGTERM, not killed


async def test_a_worker_that_cannot_start_stops_the_pod_with_its_error(
    tmp_path: Path, dev_idp: DevIdentityProvider
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    # No keystore in keys/: every worker fails to load keys, and must not be restarted.
    pod = _start(tmp_path, _write_config(tmp_path, dev_idp, policies), policies)
    try:
        code = await asyncio.to_thread(pod.process.wait, 30)
    finally:
        _stop(pod)
    assert code == 3
    failures = pod.events("worker_start_failed")
    assert failures
    assert all("keys" in str(e["error"]).lower() for e in failures)
    assert not pod.events("worker_crashed")  # no restart loop
    assert pod.events()[-1]["event"] == "workers_stopped"
