"""Server CPU per unauthenticated POST whose body is gzip-coded, on the guarded HTTP listener
(session 10 red team). The server is http/guard.py's listener (serve_http, the guard middleware,
client_max_size 64 KiB as create_http_app sets it) around a form-reading handler, in its own
process; the CPU is read from /proc/<pid>/stat before and after the requests (10 ms ticks, so
use several requests). `PYTHONPATH=<other tree>/server` runs another version (A/B).

    .venv/bin/python bench/coded_body_cost.py [--mib 1 64 256] [--requests 5]
"""

import argparse
import asyncio
import multiprocessing
import os
import zlib
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web


def _serve(ports: "Queue[int]") -> None:
    from sekisho.clock import SystemClock
    from sekisho.config import Settings
    from sekisho.protection import build_connection_guard
    from sekisho.service_listeners import serve_http

    async def token(request: web.Request) -> web.Response:
        await request.post()
        return web.Response(text="ok")

    async def main() -> None:
        guard = build_connection_guard(Settings(), SystemClock())
        app = web.Application(client_max_size=64 * 1024, middlewares=[guard.middleware()])
        app.router.add_post("/oauth2/token", token)
        _, port = await serve_http(app, "127.0.0.1:0", guard, None, False, key="server.http_listen")
        ports.put(port)
        await asyncio.Event().wait()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _gzip(mib: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b"audience=")]
    parts.extend(packer.compress(b"A" * (1 << 20)) for _ in range(mib))
    return b"".join(parts) + packer.flush()


async def _measure(port: int, pid: int, body: bytes, requests: int) -> tuple[int, float]:
    headers = {
        "Content-Encoding": "gzip",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    status = 0
    before = _cpu_seconds(pid)
    async with ClientSession() as session:
        for _ in range(requests):
            async with session.post(
                f"http://127.0.0.1:{port}/oauth2/token", data=body, headers=headers
            ) as response:
                await response.read()
                status = response.status
    return status, (_cpu_seconds(pid) - before) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--requests", type=int, default=5)
    args = parser.parse_args()
    ports: Queue[int] = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(ports,), daemon=True)
    server.start()
    port = ports.get()
    assert server.pid is not None
    try:
        for mib in args.mib:
            body = _gzip(mib)
            status, cpu = asyncio.run(_measure(port, server.pid, body, args.requests))
            result: dict[str, Any] = {"inflated_mib": mib, "sent_bytes": len(body)}
            result.update(status=status, server_cpu_ms_per_request=round(cpu * 1000, 1))
            print(result)
    finally:
        server.kill()


if __name__ == "__main__":
    main()
