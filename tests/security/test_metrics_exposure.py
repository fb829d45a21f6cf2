"""Issue 15 item 6: the public listener tells an anonymous caller nothing. /metrics is served only
on the admin listener ([metrics] listen, loopback by default), and an audience becomes a label
only when configured or granted: a probe for an unknown audience is counted as "unknown"."""

import aiohttp
import grpc
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import Settings

from tests.integration.conftest import LiveStack, dev_idp, live  # noqa: F401 (fixtures)

pytestmark = pytest.mark.security

CRM_AS = "https://crm-as.example.com"
PROBE = "https://secret-project.example.com"


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


def test_the_metrics_listener_is_loopback_by_default() -> None:
    host = Settings.model_fields["metrics"].default.listen.rpartition(":")[0]
    assert host == "127.0.0.1"


async def test_public_listener_never_serves_metrics(live: LiveStack) -> None:  # noqa: F811
    status, _ = await _get(f"{live.http_base}/metrics")
    assert status == 404
    assert live.service.metrics_port not in (0, live.service.http_port)
    status, text = await _get(f"http://127.0.0.1:{live.service.metrics_port}/metrics")
    assert status == 200 and "sekisho_" in text


async def test_probed_audiences_are_never_labelled(live: LiveStack) -> None:  # noqa: F811
    token = live.user_token()
    await live.stub.ExchangeToken(pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS))
    for audience in (PROBE, PROBE + "/2", "https://evil.example.com"):
        with pytest.raises(grpc.aio.AioRpcError):
            await live.stub.ExchangeToken(
                pb.ExchangeTokenRequest(subject_token=token, audience=audience)
            )
    _, text = await _get(f"http://127.0.0.1:{live.service.metrics_port}/metrics")
    assert f'audience="{CRM_AS}"' in text  # granted: named
    assert 'audience="unknown"' in text
    assert "secret-project" not in text and "evil.example" not in text
