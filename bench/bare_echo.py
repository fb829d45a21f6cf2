"""The floor under (a): grpc.health.v1.Health/Check on a bare grpc.aio server outside Sekisho.

`make bench`'s (a) runs the echo on Sekisho's own stack (its interceptor, uvloop, background
tasks), as the issue asks; this script answers "how far is that stack from grpc.aio itself" on the
same machine, with the same ghz settings (4 connections, 32 concurrent, server on CPU 0, ghz on
CPU 1). Variants: bare asyncio loop, bare uvloop, uvloop + Sekisho's ErrorMappingInterceptor.

    .venv/bin/python bench/bare_echo.py [--total 30000]
"""

import argparse
import asyncio
import contextvars
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loadgen import ECHO, GHZ, write_protoset

PORT = 50999


async def _serve(interceptor: bool) -> None:
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    interceptors = []
    if interceptor:
        from sekisho.rpc.interceptors import ErrorMappingInterceptor

        interceptors = [ErrorMappingInterceptor(contextvars.ContextVar("request_id", default=""))]
    server = grpc.aio.server(interceptors=interceptors)
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    server.add_insecure_port(f"127.0.0.1:{PORT}")
    await server.start()
    await server.wait_for_termination()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(variant: str, total: int, protoset: Path) -> str:
    server = subprocess.Popen(["taskset", "-c", "0", sys.executable, __file__, "--serve", variant])
    try:
        time.sleep(2)
        before = _cpu_seconds(server.pid)
        out = subprocess.run(
            [
                *("taskset", "-c", "1", str(GHZ), "--insecure", "--protoset", str(protoset)),
                *("--call", ECHO, "-d", "{}", "--concurrency", "32", "--connections", "4"),
                *("--total", str(total), "--format", "json", f"127.0.0.1:{PORT}"),
            ],
            capture_output=True,
            check=True,
            timeout=300,
        )
        cpu = _cpu_seconds(server.pid) - before
    finally:
        server.terminate()
        server.wait(timeout=10)
    report = json.loads(out.stdout)
    return f"| {variant} | {report['rps']:,.0f} | {cpu / total * 1e6:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=30000)
    parser.add_argument("--serve", default="")
    args = parser.parse_args()
    if args.serve:
        if "uvloop" in args.serve:
            import uvloop

            uvloop.install()
        asyncio.run(_serve(interceptor="interceptor" in args.serve))
        return
    with tempfile.TemporaryDirectory() as tmp:
        protoset = write_protoset(Path(tmp) / "api.protoset")
        print("| bare grpc.aio server | req/s | server CPU µs/req |\n|---|---:|---:|")
        for variant in ("asyncio", "uvloop", "uvloop+interceptor"):
            print(_measure(variant, args.total, protoset))


if __name__ == "__main__":
    main()
