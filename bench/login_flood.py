"""An unauthenticated HTTP Basic login flood (issue 14): made-up client ids, `connections`
closed loops, for `seconds`. Prints the answers by status as JSON. Loopback only.

    python bench/login_flood.py http://127.0.0.1:8080 SECONDS [CONNECTIONS]
"""

import asyncio
import base64
import json
import sys
import time
import uuid

import aiohttp


async def _loop(session: aiohttp.ClientSession, url: str, until: float, counts: dict[str, int]):
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange"}
    while time.monotonic() < until:
        basic = base64.b64encode(f"made-up-{uuid.uuid4().hex}:secret".encode()).decode()
        try:
            async with session.post(
                url, data=form, headers={"Authorization": f"Basic {basic}"}
            ) as r:
                await r.read()
                counts[str(r.status)] = counts.get(str(r.status), 0) + 1
        except aiohttp.ClientError as exc:
            counts[type(exc).__name__] = counts.get(type(exc).__name__, 0) + 1


async def main(base: str, seconds: float, connections: int) -> None:
    assert base.startswith("http://127.0.0.1"), "loopback only"
    counts: dict[str, int] = {}
    until = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        url = f"{base}/oauth2/token"
        await asyncio.gather(*(_loop(session, url, until, counts) for _ in range(connections)))
    counts["per_second"] = int(sum(v for v in counts.values()) / seconds)
    print(json.dumps(counts))


if __name__ == "__main__":
    connections = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    asyncio.run(main(sys.argv[1], float(sys.argv[2]), connections))
