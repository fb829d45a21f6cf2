"""`sekisho serve` with `[policy] bundle_url`: not ready until the bundle server answers with a
good bundle, then exchanges follow each new bundle; a bundle that fails keeps the last good."""

from pathlib import Path

import pytest
from sekisho.devidp import DevIdentityProvider
from sekisho.signing.filestore import FileKeyStore

from tests.integration.conftest import stack_settings
from tests.integration.test_opa_service import running, until
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
        server.publish(bundle(tmp_path, "v1"))
        server.status = 200
        await until(stack.readyz, 200, 5.0)
        assert await stack.outcome(["sales"]) == "crm.read"
        server.publish(bundle(tmp_path, "v2", edit=no_crm_grants))
        await until(lambda: stack.outcome(["sales"]), "access_denied", 5.0)
        before = len(server.answers)
        server.publish(b"\x1f\x8b not a bundle")
        await until(lambda: _served_since(server, before), True, 5.0)
        assert await stack.outcome(["sales"]) == "access_denied"  # the last good still serves
        assert await stack.readyz() == 200


async def _served_since(server: BundleServer, index: int) -> bool:
    return 200 in server.answers[index:]
