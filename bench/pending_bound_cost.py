"""What grpc core's pending bound ([grpc] max_pending_calls) costs the server per call it refuses
(issue 14, session 7): a bare grpc.aio server (no Sekisho code) whose handler burns BUSY_MS of
CPU on the event loop (an exchange stand-in) and refuses a call with less time left than that,
under a ghz open loop at RPS calls/s for 6 s on 128 connections with 1 s timeouts. Compare OK
calls and CPU per OK call at 1x and 2x the handler's capacity: if the calls grpc core refuses
(CANCELLED) cost CPU, OK calls fall and CPU per OK call rises at 2x.

    taskset -c 0 .venv/bin/python bench/pending_bound_cost.py BUSY_MS RPS PENDING  # 0: grpc's own
"""

import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc
from loadgen import ECHO, GHZ, write_protoset

SECONDS, CONNECTIONS = 6, 128


class Busy(health_pb2_grpc.HealthServicer):
    def __init__(self, busy: float) -> None:
        self._busy = busy

    async def Check(self, request: object, context: grpc.aio.ServicerContext) -> object:
        left = context.time_remaining()
        if left is not None and left < self._busy:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too late")
        end = time.thread_time() + self._busy
        while time.thread_time() < end:
            pass
        return health_pb2.HealthCheckResponse(status=1)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(busy: float, rps: int, pending: int) -> None:
    options: list[tuple[str, Any]] = [("grpc.max_concurrent_streams", 16)]
    if pending:
        options += [("grpc.server.max_pending_requests", pending)]
        options += [("grpc.server.max_pending_requests_hard_limit", 4 * pending)]
    server = grpc.aio.server(options=options)
    health_pb2_grpc.add_HealthServicer_to_server(Busy(busy), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = ["taskset", "-c", "1", str(GHZ), "--insecure", "--call", ECHO, "-d", "{}"]
        command += ["--protoset", str(write_protoset(Path(tmp) / "api.protoset"))]
        command += ["--rps", str(rps), "--async", "--total", str(rps * SECONDS), "--timeout", "1s"]
        command += ["--concurrency", str(CONNECTIONS), "--connections", str(CONNECTIONS)]
        command += ["--format", "json", "-o", str(out), f"127.0.0.1:{port}"]
        before, started = _cpu(), time.time()
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL)
        await process.wait()
        cpu, wall = _cpu() - before, time.time() - started
        statuses = json.loads(out.read_text()).get("statusCodeDistribution") or {}
    ok = statuses.get("OK", 0)
    print(json.dumps({"busy_ms": busy * 1e3, "rps": rps, "pending": pending, "statuses": statuses,
                      "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                      "cpu_per_ok_ms": round(cpu / max(ok, 1) * 1e3, 3)}))  # fmt: skip
    os._exit(0)  # no graceful shutdown wait


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(float(sys.argv[1]) / 1e3, int(sys.argv[2]), int(sys.argv[3])))
