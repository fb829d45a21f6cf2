"""A gateway that exchanges per outbound request (RFC 9068 access tokens via sekisho.client's
httpx.Auth) and reports its cache hit ratio.

    .venv/bin/python -m examples.gateway_cache [--requests 200]
"""

import argparse
import asyncio
import contextvars
import random

import httpx
from aiohttp import web
from sekisho.client import Downstream, SekishoAuth
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN

from examples.mcp_enterprise.stack import running_stack

CRM = Downstream(
    audience="https://crm-as.example.com",
    resources=("https://crm.example.com/mcp",),
    requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
)
USER_TOKEN: contextvars.ContextVar[str] = contextvars.ContextVar("user_token")


async def _upstream() -> tuple[web.AppRunner, str, list[str]]:
    """A stand-in for the CRM API: records which bearer token each request carried."""
    seen: list[str] = []

    async def api(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/api", api)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/api", seen


async def main(requests: int) -> None:
    async with running_stack([]) as stack, stack.client() as sekisho:
        runner, url, seen = await _upstream()
        users = [stack.login(name, ["sales"]) for name in ("alice", "bob", "carol")]
        auth = SekishoAuth(sekisho, CRM, USER_TOKEN.get)
        rng = random.Random(7)  # noqa: S311 (which user calls next, not crypto)
        async with httpx.AsyncClient(auth=auth) as http:
            for _ in range(requests):
                USER_TOKEN.set(rng.choice(users))  # the user of the request being proxied
                (await http.get(url)).raise_for_status()
        await runner.cleanup()
        cache = sekisho.cache
        print(f"requests={requests} exchanges={sekisho.rpc_count} distinct_tokens={len(set(seen))}")
        print(f"cache hits={cache.hits} misses={cache.misses} hit_ratio={cache.hit_ratio:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    asyncio.run(main(parser.parse_args().requests))
