"""What a refusal costs on each path grpc.aio offers (issue 14, session 4), in a bare server
with no Sekisho code: server CPU per call over 6,000 grpc.health.v1 Check calls from ghz (32
callers, 4 connections), server on core 0, ghz on core 1. Run each mode in its own process:

    taskset -c 0 .venv/bin/python bench/refusal_paths.py ok      # a trivial answer
    taskset -c 0 .venv/bin/python bench/refusal_paths.py abort   # the handler aborts at once
    taskset -c 0 .venv/bin/python bench/refusal_paths.py status  # sets the status, returns None
    taskset -c 0 .venv/bin/python bench/refusal_paths.py limit   # maximum_concurrent_rpcs=1 full:
                                                                 # refused before any handler
"""

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loadgen import ECHO, GHZ, write_protoset

CALLS = 6000


class Health(health_pb2_grpc.HealthServicer):
    def __init__(self, mode: str) -> None:
        self._mode = mode

    async def Check(self, request: object, context: grpc.aio.ServicerContext) -> object:
        if self._mode == "abort":
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
        if self._mode == "status":  # the same status without AbortError's exception path
            context.set_code(grpc.StatusCode.RESOURCE_EXHAUSTED)
            context.set_details("busy")
            return None
        if self._mode == "limit":
            await asyncio.sleep(3600)  # the one call holding the only slot
        return health_pb2.HealthCheckResponse(status=1)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(mode: str) -> None:
    limit = {"maximum_concurrent_rpcs": 1} if mode == "limit" else {}
    server = grpc.aio.server(options=[("grpc.max_concurrent_streams", 128)], **limit)
    health_pb2_grpc.add_HealthServicer_to_server(Health(mode), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    if mode == "limit":
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        call = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        holder = asyncio.ensure_future(call)
        await asyncio.sleep(0.3)
        assert not holder.done()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = ["taskset", "-c", "1", str(GHZ), "--insecure", "--call", ECHO, "-d", "{}"]
        command += ["--protoset", str(write_protoset(Path(tmp) / "api.protoset"))]
        command += ["--total", str(CALLS), "--concurrency", "32", "--connections", "4"]
        command += ["--format", "json", "-o", str(out), f"127.0.0.1:{port}"]
        before = _cpu()
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL)
        await process.wait()
        report = json.loads(out.read_text())
    per_call = (_cpu() - before) / CALLS * 1e6
    print(json.dumps({"mode": mode, "server_cpu_us_per_call": round(per_call, 1),
                      "statuses": report.get("statusCodeDistribution")}))  # fmt: skip
    os._exit(0)  # the held call would keep shutdown waiting


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
