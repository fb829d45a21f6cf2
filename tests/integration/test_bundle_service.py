"""`sekisho serve` with `[policy] bundle_url`: not ready until the bundle server answers with a
good bundle, then exchanges follow each new bundle; a bundle that fails keeps the last good."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sekisho.devidp import DevIdentityProvider
from sekisho.observability import SCRAPE_REUSE_SECONDS
from sekisho.signing.filestore import FileKeyStore

from tests.integration.conftest import stack_settings
from tests.integration.test_opa_service import GIVE_UP_SECONDS, running, until
from tests.integration.test_policy_bundles import BundleServer, bundle, no_crm_grants, server

pytestmark = pytest.mark.integration
__all__ = ["server"]  # the loopback bundle server fixture


async def test_serving_follows_the_bundle_server(
    tmp_path: Path, server: BundleServer, dev_idp: DevIdentityProvider
) -> None:
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    server.status = 503
    policy = {
        "bundle_url": server.url,
        "bundle_poll_min_seconds": 0.1,
        "bundle_poll_max_seconds": 0.2,
        "path": str(tmp_path / "no-such-folder"),  # never read with a bundle
    }
    settings = stack_settings(dev_idp.issuer, keys, policy=policy)
    async with running(settings, dev_idp) as stack:
        assert await stack.readyz() == 503
        assert await stack.outcome(["sales"]) == "temporarily_unavailable"
        failed = _key("sekisho_policy_bundle_failures", "download_failed")
        scraped = await _bundle_metrics(stack.service.metrics_port, until=failed)
        assert scraped[("sekisho_policy_bundle_last_activation_timestamp_seconds", "")] == 0
        server.publish(bundle(tmp_path, "v1"))
        server.status = 200
        await until(stack.readyz, 200, GIVE_UP_SECONDS)
        assert await stack.outcome(["sales"]) == "crm.read"
        scraped = await _bundle_metrics(stack.service.metrics_port)
        assert scraped[("sekisho_policy_bundle_info", "v1")] == 1
        assert scraped[("sekisho_policy_bundle_last_activation_timestamp_seconds", "")] > 0
        assert scraped[("sekisho_policy_bundle_last_poll_timestamp_seconds", "")] > 0
        server.publish(bundle(tmp_path, "v2", edit=no_crm_grants))
        await until(lambda: stack.outcome(["sales"]), "access_denied", GIVE_UP_SECONDS)
        before = len(server.answers)
        server.publish(b"\x1f\x8b not a bundle")
        await until(lambda: _served_since(server, before), True, GIVE_UP_SECONDS)
        assert await stack.outcome(["sales"]) == "access_denied"  # the last good still serves
        assert await stack.readyz() == 200
        rejected = _key("sekisho_policy_bundle_failures", "rejected")
        scraped = await _bundle_metrics(stack.service.metrics_port, until=rejected)
        assert scraped[("sekisho_policy_bundle_info", "v2")] == 1
        assert scraped[("sekisho_policy_bundle_info", "v1")] == 0


async def test_a_shadow_bundles_failures_are_exported_apart_from_the_live_ones(
    tmp_path: Path, server: BundleServer, dev_idp: DevIdentityProvider
) -> None:
    """A [policy.shadow] bundle_url's failed polls and refused bundles were logged
    (shadow_policy_bundle_*) but never exported: only the live engine's status reached /metrics,
    so a shadow fed from a bundle server could not be alerted on. They are counted in their own
    metric; the live one (a folder here) stays empty, so its alerts never fire for a candidate."""
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    server.status = 503
    policy = {
        "bundle_poll_min_seconds": 0.1,
        "bundle_poll_max_seconds": 0.2,
        "shadow": {"bundle_url": server.url},
    }
    settings = stack_settings(dev_idp.issuer, keys, policy=policy)
    async with running(settings, dev_idp) as stack:
        assert await stack.readyz() == 200  # the live policy is the folder
        failed = _key("sekisho_shadow_policy_bundle_failures", "download_failed")
        await _bundle_metrics(stack.service.metrics_port, until=failed)
        server.publish(b"\x1f\x8b not a bundle")
        server.status = 200
        rejected = _key("sekisho_shadow_policy_bundle_failures", "rejected")
        scraped = await _bundle_metrics(stack.service.metrics_port, until=rejected)
        assert not [key for key in scraped if key[0] == "sekisho_policy_bundle_failures"]
        assert await stack.outcome(["sales"]) == "crm.read"


Scraped = dict[tuple[str, str], float]


def _key(name: str, label: str) -> Callable[[Scraped], bool]:
    """The sample (name, label) counts at least one."""
    return lambda scraped: scraped.get((name, label), 0) >= 1


async def _bundle_metrics(port: int, until: Callable[[Scraped], bool] = lambda _: True) -> Scraped:
    """The sekisho_policy_bundle_* and sekisho_shadow_policy_bundle_* samples of GET /metrics, by (name, revision or reason); after
    SCRAPE_REUSE_SECONDS, so a scrape never gets the body of the one before. Scraped again until
    `until` holds (a hang guard of GIVE_UP_SECONDS): a failed poll is counted when the service
    has read the answer, and at a fixed point a loaded host might not have done so yet."""
    give_up = time.monotonic() + GIVE_UP_SECONDS
    while True:
        await asyncio.sleep(SCRAPE_REUSE_SECONDS)
        url = f"http://127.0.0.1:{port}/metrics"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            text = await response.text()
        scraped = _bundle_samples(text)
        if until(scraped):
            return scraped
        assert time.monotonic() < give_up, f"not counted: {scraped}"


def _bundle_samples(text: str) -> Scraped:
    return {
        (sample.name, sample.labels.get("revision", sample.labels.get("reason", ""))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("sekisho_policy_bundle_", "sekisho_shadow_policy_bundle_"))
    }


async def _served_since(server: BundleServer, index: int) -> bool:
    return 200 in server.answers[index:]
