"""Issue 15 item 6: the public listener tells an anonymous caller nothing. /metrics is served only
on the admin listener ([metrics] listen, loopback by default), and an audience becomes a label
only when configured or granted: a probe for an unknown audience is counted as "unknown"."""

import aiohttp
import grpc
import pytest
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import Settings
from sekisho.observability import SCRAPE_REUSE_SECONDS, build_observability

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


def test_scrapes_within_a_second_of_the_last_render_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Red team, session 13: GET /metrics is unauthenticated (the shipped config binds the admin
    listener to the pod IP) and a render took 14-21 ms of the event loop with the default 50
    audiences once traffic had made its series: one client asking on a kept-alive connection
    (40 a second) held a worker's loop. Now a scrape within SCRAPE_REUSE_SECONDS of the last
    gets its body."""
    observability = build_observability(Settings())
    assert observability.metrics is not None
    renders: list[int] = []
    render = observability.metrics.render

    def counted() -> tuple[bytes, str]:
        renders.append(1)
        return render()

    monkeypatch.setattr(observability.metrics, "render", counted)
    first = observability.scrape(1000.0)
    for offset in range(50):
        assert observability.scrape(1000.0 + offset * SCRAPE_REUSE_SECONDS / 50) == first
    assert len(renders) == 1  # before: 51
    observability.scrape(1000.0 + SCRAPE_REUSE_SECONDS)
    assert len(renders) == 2
    observability.scrape(990.0)  # the clock went back: render, never serve an older body forever
    assert len(renders) == 3
