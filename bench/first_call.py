"""The first calls of fresh gRPC connections to one real `sekisho serve` (defaults, pinned to
core 0; this client on core 1), with a heartbeat beside the server: is a slow start the
connection's (grpc connect, HTTP/2 setup, the acceptors) or the server not running at all?

Each connection is a new channel with its own subchannel (a new agent process), sends 16
ExchangeToken calls at once (the SDK's max_in_flight) with a 3 s deadline, and closes. Per
connection: when grpc reported it READY, and when the last of its calls was answered. The
heartbeat is a process pinned to the server's core that sleeps 5 ms at a time and records every
wake-up more than 100 ms late: when it was not scheduled either, the server's own code is not
what held the calls (another on the client's core tells a stall of one core from the machine's).

    .venv/bin/python bench/first_call.py [--connections 300] [--acceptors 4]
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE, Popen
from typing import Any

import grpc
import overload
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from stack import Idp, exchange_messages, policy_folder, workload

CALLS = 16
DEADLINE = 3.0
SLOW = 0.5
HEARTBEAT = """
import os, sys, time
os.sched_setaffinity(0, {int(sys.argv[1])})
gaps, last = [], time.time()
while not os.path.exists(sys.argv[2]):
    time.sleep(0.005)
    now = time.time()
    if now - last > 0.1:
        gaps.append([last, now])
    last = now
print(__import__("json").dumps(gaps))
"""


async def connection(target: str, message: dict[str, Any]) -> dict[str, Any]:
    """One fresh connection's first calls: seconds to READY and to the last answer."""
    channel = grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
    stub = pb_grpc.TokenExchangeServiceStub(channel)
    started, ready_at = time.time(), []

    async def note_ready() -> None:
        await channel.channel_ready()
        ready_at.append(time.time())

    watcher = asyncio.ensure_future(note_ready())
    request = pb.ExchangeTokenRequest(**message)
    calls = [stub.ExchangeToken(request, timeout=DEADLINE) for _ in range(CALLS)]
    answers = await asyncio.gather(*calls, return_exceptions=True)
    done = time.time()
    watcher.cancel()
    await channel.close()
    return {
        "started": started,
        "seconds": done - started,
        "ready_ms": round((ready_at[0] - started) * 1e3, 1) if ready_at else None,
        "failed": [a.code().name for a in answers if isinstance(a, grpc.aio.AioRpcError)],
    }


async def run(target: str, messages: list[dict[str, Any]], total: int) -> list[dict[str, Any]]:
    out = []
    for n in range(total):
        out.append(await connection(target, messages[n % len(messages)]))
        await asyncio.sleep(0.02)
    return out


def overlaps(run: dict[str, Any], gaps: list[list[float]]) -> float:
    """Seconds of the connection's wait during which the server's core ran nothing else."""
    start, end = run["started"], run["started"] + run["seconds"]
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in gaps)


def report(
    runs: list[dict[str, Any]], gaps: list[list[float]], client_gaps: list[list[float]]
) -> dict[str, Any]:
    seconds = sorted(r["seconds"] for r in runs)
    slow = [r for r in runs if r["seconds"] > SLOW]
    return {
        "connections": len(runs),
        "p50_ms": round(statistics.median(seconds) * 1e3, 1),
        "p99_ms": round(seconds[int(0.99 * (len(seconds) - 1))] * 1e3, 1),
        "max_ms": round(seconds[-1] * 1e3, 1),
        "slow": len(slow),
        # Per slow connection: [ms to its last answer, ms to READY, ms of that wait in which
        # the heartbeat on the server's core was not scheduled, the same on the client's core,
        # calls failed].
        "slow_connections": [
            [
                round(r["seconds"] * 1e3),
                r["ready_ms"],
                round(overlaps(r, gaps) * 1e3),
                round(overlaps(r, client_gaps) * 1e3),
                len(r["failed"]),
            ]
            for r in slow
        ],
        "server_core_gaps_over_300ms": sum(1 for a, b in gaps if b - a > 0.3),
        "server_core_gap_max_ms": round(max((b - a for a, b in gaps), default=0) * 1e3),
        "client_core_gap_max_ms": round(max((b - a for a, b in client_gaps), default=0) * 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=300)
    parser.add_argument("--acceptors", type=int, default=4)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(overload.LOAD_CPUS)})
    with tempfile.TemporaryDirectory(prefix="sekisho-first-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        messages = exchange_messages(idp, load)
        policy_folder(root, load)
        extra = f"[grpc]\nacceptors = {args.acceptors}\n"
        server = overload._server(root, idp, "defaults", overload=True, extra=extra)
        stop = root / "stop"
        heartbeats = [
            Popen([sys.executable, "-c", HEARTBEAT, cpu, str(stop)], stdout=PIPE)
            for cpu in (overload.SERVER_CPUS, overload.LOAD_CPUS)
        ]
        try:
            runs = asyncio.run(run(server.grpc_target, messages, args.connections))
        finally:
            stop.touch()
            gaps, client_gaps = (json.loads(h.communicate(timeout=10)[0]) for h in heartbeats)
            server.stop()
            idp.close()
    print(json.dumps(report(runs, gaps, client_gaps)))


if __name__ == "__main__":
    main()
