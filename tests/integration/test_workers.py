"""`server.workers = 2` as real processes: both workers share the ports and serve, a key promotion
and a policy data change reach both, /metrics on the shared port reports the whole pod, a killed
worker is restarted, SIGTERM drains every worker, and a worker that cannot start stops the pod."""

import asyncio
import json
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sekisho.devidp import DevIdentityProvider

from tests.harness import POLICIES
from tests.integration.conftest import AGENT_AUDIENCE
from tests.workers_pod import (
    CRM_AS,
    SEKISHO,
    Pod,
    alive,
    pod_folder,
    running_pod,
    start_pod,
    stop_pod,
    within,
    workers_config,
)

pytestmark = pytest.mark.integration

# A hang guard, not a pickup bound: each try is a phase of REQUESTS fresh connections, which at
# load ~10 takes seconds itself (10 s allowed about two).
PICKUP_SECONDS = 60.0
REQUESTS = 24  # fresh channels per phase: P(all on one of 2 workers) = 2**-23


@pytest.fixture
async def pod(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Pod]:
    policies = pod_folder(tmp_path)
    config = workers_config(tmp_path, dev_idp, policies)
    async with running_pod(tmp_path, config, policies) as running:
        yield running


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

    await within(promoted, PICKUP_SECONDS)
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

    await within(denied, PICKUP_SECONDS)
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

    await within(replaced, 60)  # a hang guard: a worker starts in seconds at load ~10
    assert [e["exit_code"] for e in pod.events("worker_crashed")] == [-signal.SIGKILL]
    _, body = await asyncio.to_thread(pod.http_get, "/metrics")
    assert "sekisho_worker_restarts_total 1.0" in body.decode()

    pod.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(pod.process.wait, 60) == 0  # a hang guard
    stopped = {int(str(e["pid"])) for e in pod.events("service_stopped")}
    assert stopped == pod.worker_pids() - {victim}  # every live worker drained and stopped
    assert pod.events()[-1]["event"] == "workers_stopped"


async def test_workers_exit_when_the_supervisor_is_killed(pod: Pod) -> None:
    """A SIGKILLed supervisor (OOM killer) must not leave workers serving the shared ports."""
    workers = pod.worker_pids()
    assert all(alive(pid) for pid in workers)
    pod.process.kill()
    pod.process.wait(timeout=60)

    async def all_gone() -> bool:
        return not any(alive(pid) for pid in workers)

    await within(all_gone, 60)  # a hang guard: each drains (2 s grace) after the SIGTERM
    stopped = {int(str(e["pid"])) for e in pod.events("service_stopped")}
    assert stopped == workers  # each drained on its parent-death SIGTERM, not killed


async def test_a_worker_that_cannot_start_stops_the_pod_with_its_error(
    tmp_path: Path, dev_idp: DevIdentityProvider
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    # No keystore in keys/: every worker fails to load keys, and must not be restarted.
    pod = start_pod(tmp_path, workers_config(tmp_path, dev_idp, policies), policies)
    try:
        code = await asyncio.to_thread(pod.process.wait, 30)
    finally:
        stop_pod(pod)
    assert code == 3
    failures = pod.events("worker_start_failed")
    assert failures
    assert all("keys" in str(e["error"]).lower() for e in failures)
    assert not pod.events("worker_crashed")  # no restart loop
    assert pod.events()[-1]["event"] == "workers_stopped"
