"""CPU a Sekisho overload refusal costs against an exchange, in one server (issue 14, session 5).

Trigger: the standing-queue stage (standing_queue.py). On one connection, a call with a 30 s
timeout every 2 s sets the connection's fresh budget; 32 callers in a closed loop on the same
connection send calls with a 1 s timeout, which therefore look as if they had waited 29 s in
grpc: after CoDel's 100 ms interval every one of them is refused by the overload path, however
early or late the server refuses. Exchange CPU `e` is measured first on the same server (one
caller, never refused); then refusal CPU `c = (CPU - ok x e) / refused`. Caches off. Server
on core 0, this client on core 1. `PYTHONPATH=<other tree>/server` runs another version of the
server code (A/B, alternate the sides).

    PATH=$PWD/bin:$PATH .venv/bin/python bench/refusal_cost.py [--rounds 1] [--calls 6000]
"""

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from stack import (
    Idp,
    Server,
    Settings,
    exchange_messages,
    policy_folder,
    serve_variant,
    workload,
)

SERVER_CPUS, CLIENT_CPU = "0", {1}
CALLERS = 32


async def _load(server: Server, requests: list[Any], calls: int) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.TokenExchangeServiceStub(channel)
        for request in requests[:200]:  # warm up, one caller
            await stub.ExchangeToken(request, timeout=30)
        cpu = server.cpu_seconds()
        for request in requests[200:1200]:
            await stub.ExchangeToken(request, timeout=30)
        exchange = (server.cpu_seconds() - cpu) / 1000
        statuses: dict[str, int] = {}
        latencies: list[float] = []
        remaining = [calls]

        async def caller(offset: int) -> None:
            index = offset
            while remaining[0] > 0:
                remaining[0] -= 1
                index += CALLERS
                started = time.perf_counter()
                try:
                    await stub.ExchangeToken(requests[index % len(requests)], timeout=1.0)
                    code = "OK"
                except grpc.aio.AioRpcError as error:
                    code = error.code().name
                    latencies.append(time.perf_counter() - started)
                statuses[code] = statuses.get(code, 0) + 1

        async def fresh_budget() -> None:
            while True:
                await stub.ExchangeToken(requests[0], timeout=30)
                await asyncio.sleep(2.0)

        keeper = asyncio.create_task(fresh_budget())
        await asyncio.sleep(0.5)
        cpu, started = server.cpu_seconds(), time.perf_counter()
        await asyncio.gather(*(caller(n) for n in range(CALLERS)))
        used, seconds = server.cpu_seconds() - cpu, time.perf_counter() - started
        keeper.cancel()
    refused = sum(n for code, n in statuses.items() if code != "OK")
    refusal = (used - statuses.get("OK", 0) * exchange) / max(1, refused)
    latencies.sort()
    return {
        "exchange_cpu_us": round(exchange * 1e6, 1),
        "refusal_cpu_us": round(refusal * 1e6, 1),
        "ratio": round(refusal / exchange, 3),
        "by_status": statuses,
        "calls_per_s": round(calls / seconds),
        "server_cpu_share": round(used / seconds, 2),
        "refused_p50_p99_ms": [
            round(latencies[int(q * (len(latencies) - 1))] * 1e3, 2) for q in (0.5, 0.99)
        ]
        if latencies
        else [],
    }


def measure(root: Path, idp: Idp, requests: list[Any], name: str, calls: int) -> dict[str, Any]:
    settings = Settings(caches=False, overload=True)
    server = serve_variant(root, idp, name, settings, cpus=SERVER_CPUS)
    try:
        return asyncio.run(_load(server, requests, calls))
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--calls", type=int, default=6000)
    args = parser.parse_args()
    os.sched_setaffinity(0, CLIENT_CPU)
    with tempfile.TemporaryDirectory(prefix="sekisho-refusal-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        requests = [json_format.ParseDict(m, pb.ExchangeTokenRequest()) for m in
                    exchange_messages(idp, load)]  # fmt: skip
        policy_folder(root, load)
        for round_ in range(args.rounds):
            result = measure(root, idp, requests, f"r{round_}", args.calls)
            print(json.dumps({"code": os.environ.get("PYTHONPATH", "this tree"), **result}))
        idp.close()


if __name__ == "__main__":
    main()
