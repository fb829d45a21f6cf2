"""Caller-side cost of sekisho.client: a cache hit vs a miss (a real ExchangeToken RPC), in one run.

Starts the dev IdP and Sekisho in-process on loopback (embedded policy, file keystore), then times
`TokenExchangeClient.exchange` for the same access-token request N times with the cache off
(every call an RPC: the miss path) and N times with it on (after one warm-up miss: the hit path).

    .venv/bin/python bench/client_cache.py [--calls 2000]
"""

import argparse
import asyncio
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

from aiohttp import web
from sekisho.client import ChannelOptions, TokenExchangeClient
from sekisho.config import Settings
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.devidp import DevIdentityProvider, create_app
from sekisho.service import start_service
from sekisho.signing.filestore import FileKeyStore

REPO = Path(__file__).resolve().parents[1]
AUDIENCE, RESOURCE = "https://crm-as.example.com", "https://crm.example.com/mcp"


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"| {name} | {statistics.median(ordered) * 1e6:.1f} | {p99 * 1e6:.1f} | "
        f"{statistics.fmean(ordered) * 1e6:.1f} | {len(ordered)} |"
    )


async def _time_calls(client: TokenExchangeClient, subject: str, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await client.exchange(
            subject, AUDIENCE, resources=[RESOURCE], requested_token_type=TOKEN_TYPE_ACCESS_TOKEN
        )
        samples.append(time.perf_counter() - start)
    return samples


async def main(calls: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        idp = DevIdentityProvider.open(
            Path(tmp) / "idp", f"http://127.0.0.1:{sock.getsockname()[1]}"
        )
        idp_runner = web.AppRunner(create_app(idp), access_log=None)
        await idp_runner.setup()
        await web.SockSite(idp_runner, sock).start()
        FileKeyStore(Path(tmp) / "keys").init("ES256", int(time.time()) - 3600)
        settings = Settings(
            server={
                "grpc_listen": "127.0.0.1:0",
                "http_listen": "127.0.0.1:0",
                "issuer": "https://sekisho.bench",
            },
            trust={
                "issuers": [
                    {
                        "issuer": idp.issuer,
                        "jwks_uri": idp.issuer + "/jwks.json",
                        "audiences": ["agent-app"],
                    }
                ]
            },
            policy={"path": str(REPO / "policies"), "watch": False},
            keys={"dir": str(Path(tmp) / "keys"), "watch": False},
        )
        service = await start_service(settings)
        target = f"127.0.0.1:{service.grpc.port}"
        subject = idp.token(
            {"sub": "alice", "aud": "agent-app", "groups": ["sales"], "tenant": "acme"}, ttl=3600
        )
        options = ChannelOptions(insecure=True)
        try:
            async with TokenExchangeClient(
                target, channel_options=options, cache_token_types=()
            ) as uncached:
                await _time_calls(uncached, subject, 100)  # warm up channel and server caches
                miss = await _time_calls(uncached, subject, calls)
            async with TokenExchangeClient(target, channel_options=options) as cached:
                await _time_calls(cached, subject, 1)
                hit = await _time_calls(cached, subject, calls)
                assert cached.rpc_count == 1, "every timed call must be a cache hit"
        finally:
            await service.stop(0.5)
            await idp_runner.cleanup()
    print(f"python {platform.python_version()} on {platform.machine()}, {calls} calls each")
    print("| path | median µs | p99 µs | mean µs | n |\n|---|---|---|---|---|")
    print(_summary("miss (ExchangeToken RPC)", miss))
    print(_summary("hit (cache)", hit))
    print(f"\nmedian miss / median hit = {statistics.median(miss) / statistics.median(hit):.0f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
