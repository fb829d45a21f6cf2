"""KMS throttled or down, at the HTTP layer: a loopback proxy in front of moto's KMS server
answers Sign with AWS's real ThrottlingException wire format (HTTP 400, x-amz-json-1.1), or is
stopped (connection refused). Everything else is forwarded to moto untouched.

moto itself cannot throttle; the proxy lets botocore parse a genuine throttling response, so the
test covers Sekisho's error mapping and retry loop with no stubbing inside the process.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sekisho.errors import TemporarilyUnavailableError
from sekisho.signing.audit import Actor
from sekisho.signing.keyring import Keyring
from sekisho.signing.signer import Signer

from tests.fakes.clock import FakeClock
from tests.integration.backends import make_backend

pytestmark = pytest.mark.integration

THROTTLED = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
# [keys] kms_timeout_seconds, the signer's retry deadline (and each set-up call's): long enough
# for the replica's key load through the proxy and two throttled tries at load ~12 (moto took
# over 2 s to answer there); at 0.5 s either could run out and fail the test, not the claim.
KMS_TIMEOUT = 5.0
# Only stops a signer that never gives up (its deadline gone); how long giving up takes is no
# claim here: the unit tests check the backoff against the deadline (tests/unit/signing/test_kms.py).
GIVE_UP_SECONDS = 30.0


@dataclass
class KmsProxy:
    """Forwards to moto; throttles the next `throttle_next` Sign calls (-1 = all of them)."""

    upstream: str
    url: str = ""
    throttle_next: int = 0
    throttled: int = 0
    signed: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("X-Amz-Target", "").endswith(".Sign"):
            if self.throttle_next != 0:
                self.throttle_next -= 1 if self.throttle_next > 0 else 0
                self.throttled += 1
                return web.Response(
                    status=400,
                    body=THROTTLED,
                    headers={
                        "Content-Type": "application/x-amz-json-1.1",
                        "x-amzn-ErrorType": "ThrottlingException",
                    },
                )
            self.signed += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.upstream + request.path_qs, data=body, headers=headers) as answer,
        ):
            return web.Response(
                status=answer.status,
                body=await answer.read(),
                headers={"Content-Type": answer.headers.get("Content-Type", "")},
            )


@pytest.fixture
async def proxy(aws_env: str) -> AsyncIterator[KmsProxy]:
    state = KmsProxy(upstream=aws_env)
    app = web.Application()
    app.router.add_post("/{tail:.*}", state.handle)
    state.runner = web.AppRunner(app, access_log=None)
    await state.runner.setup()
    site = web.TCPSite(state.runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield state
    await state.runner.cleanup()


async def _signer_via(
    proxy: KmsProxy, tmp_path: Path, aws_env: str, deadline: float = KMS_TIMEOUT
) -> Signer:
    """Keys created straight at moto; a replica reaching KMS only through the proxy."""
    prefix = f"sekisho-test/{uuid.uuid4().hex[:12]}"
    # Straight at moto, with the longest timeout config allows: at load ~12 moto took more than
    # the default 2 s to answer ListAliases and failed the set-up, not the claim under test.
    direct = make_backend(
        "kms", tmp_path, aws_env, FakeClock(), kms_alias_prefix=prefix, kms_timeout_seconds=30
    )
    await asyncio.to_thread(direct.manager().init, Actor(operator="test", reason="faults"))
    via = make_backend(
        "kms",
        tmp_path,
        proxy.url,
        FakeClock(),
        kms_alias_prefix=prefix,
        kms_timeout_seconds=deadline,
    )
    keyring = Keyring(via.store())
    await asyncio.to_thread(keyring.load)
    return keyring.signing_key()[1]


async def test_kms_throttled_is_retried_then_succeeds(
    proxy: KmsProxy, tmp_path: Path, aws_env: str
) -> None:
    signer = await _signer_via(proxy, tmp_path, aws_env, deadline=GIVE_UP_SECONDS)
    proxy.throttle_next = 2
    assert await signer.sign(b"header.payload")
    assert (proxy.throttled, proxy.signed) == (2, 1)


async def test_kms_throttled_throughout_is_unavailable_within_the_deadline(
    proxy: KmsProxy, tmp_path: Path, aws_env: str
) -> None:
    signer = await _signer_via(proxy, tmp_path, aws_env)
    proxy.throttle_next = -1
    with pytest.raises(TemporarilyUnavailableError) as raised:
        await asyncio.wait_for(signer.sign(b"header.payload"), GIVE_UP_SECONDS)
    assert (raised.value.grpc_code, raised.value.reason) == (
        "UNAVAILABLE",
        "temporarily_unavailable",
    )
    assert proxy.throttled >= 2  # retried before giving up
    assert proxy.signed == 0


async def test_kms_down_is_retried_then_unavailable(
    proxy: KmsProxy, tmp_path: Path, aws_env: str
) -> None:
    signer = await _signer_via(proxy, tmp_path, aws_env)
    assert proxy.runner is not None
    await proxy.runner.cleanup()  # KMS endpoint gone: connection refused
    with pytest.raises(TemporarilyUnavailableError) as raised:
        await asyncio.wait_for(signer.sign(b"header.payload"), GIVE_UP_SECONDS)
    assert raised.value.grpc_code == "UNAVAILABLE"
