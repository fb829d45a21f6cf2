"""Issue 19, class 5: workers degrade, never cascade (real `sekisho serve`, workers = 2).

A replacement worker that cannot start never takes the healthy worker and the pod down; SIGHUP
reloads instead of killing the pod; the Prometheus multiprocess folder holds only the live
processes' files plus one archive per metric type however often a worker crashes (totals kept),
and is removed when the pod exits.
"""

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sekisho.devidp import DevIdentityProvider

from tests.integration.conftest import AGENT_AUDIENCE
from tests.workers_pod import Pod, alive, pod_folder, running_pod, within, workers_config

pytestmark = pytest.mark.integration

BROKEN_REGO = "package sekisho.exchange\n\nthis is not rego\n"


@pytest.fixture
async def pod(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Pod]:
    """tests/workers_pod.py's pod, with TMPDIR (so the metrics folder) known."""
    (tmp_path / "tmp").mkdir()
    policies = pod_folder(tmp_path)
    config = workers_config(tmp_path, dev_idp, policies)
    async with running_pod(tmp_path, config, policies, {"TMPDIR": str(tmp_path / "tmp")}) as pod:
        yield pod


def _token(dev_idp: DevIdentityProvider) -> str:
    return dev_idp.token({"sub": "alice", "aud": AGENT_AUDIENCE, "groups": ["sales"]}, ttl=600)


async def _kill_and_wait_for_replacement(pod: Pod, victim: int) -> None:
    before = pod.worker_pids()
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        return len(pod.worker_pids() - before) == 1

    await within(replaced, 30)


async def test_a_replacement_that_cannot_start_leaves_the_healthy_worker_serving(
    pod: Pod, dev_idp: DevIdentityProvider
) -> None:
    token = _token(dev_idp)
    broken = pod.policies / "sekisho" / "exchange" / "zz_broken.rego"
    broken.write_text(BROKEN_REGO, encoding="utf-8")  # running workers keep their last good policy
    victim, survivor = sorted(pod.worker_pids())
    os.kill(victim, signal.SIGKILL)

    async def replacement_failed() -> bool:
        return bool(pod.events("worker_restart_failed"))

    await within(replacement_failed, 30)
    assert pod.process.poll() is None  # the pod is still up
    assert alive(survivor)
    outcomes = {(await pod.exchange(token, f"degraded-{i}"))[0] for i in range(4)}
    assert outcomes == {"granted"}  # the survivor answers every call

    broken.unlink()  # fixed: the next retry of the replacement starts

    async def healed() -> bool:
        return len(pod.worker_pids() - {victim}) == 2

    await within(healed, 40)
    assert not pod.events("worker_never_started")


async def test_sighup_reloads_every_worker_and_stops_nothing(
    pod: Pod, dev_idp: DevIdentityProvider
) -> None:
    pod.process.send_signal(signal.SIGHUP)

    async def reloaded() -> bool:
        return len(pod.events("reload_requested")) == 2

    await within(reloaded, 60)  # a hang guard
    assert pod.events("workers_reloading")
    assert pod.process.poll() is None
    assert (await pod.exchange(_token(dev_idp), "after-hup"))[0] == "granted"


def _metrics_dir(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "tmp").glob("sekisho-metrics-*")
    return folder


async def test_a_crash_looping_worker_cannot_fill_the_metrics_folder(
    pod: Pod, dev_idp: DevIdentityProvider, tmp_path: Path
) -> None:
    token = _token(dev_idp)
    for i in range(6):
        assert (await pod.exchange(token, f"before-{i}"))[0] == "granted"
    for _ in range(3):
        await _kill_and_wait_for_replacement(pod, min(p for p in pod.worker_pids() if alive(p)))
    folder = _metrics_dir(tmp_path)
    live = {str(pid) for pid in pod.worker_pids() if alive(pid)}
    live.add(str(pod.process.pid))
    owners = {path.stem.rsplit("_", 1)[1] for path in folder.glob("*.db")}
    assert owners <= live | {"archive"}, sorted(owners - live)
    _, body = await asyncio.to_thread(pod.http_get, "/metrics")
    text = body.decode()
    assert "sekisho_worker_restarts_total 3.0" in text
    granted = [
        line for line in text.splitlines()
        if line.startswith("sekisho_exchanges_total{") and 'outcome="granted"' in line
    ]  # fmt: skip
    assert sum(float(line.rsplit(" ", 1)[1]) for line in granted) >= 6  # totals kept

    pod.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(pod.process.wait, 20) == 0
    assert not folder.exists()  # removed on exit
