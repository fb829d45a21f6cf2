"""Syscalls per RPC of a real `sekisho serve` (workers = 1), counted by `strace -c -f` attached
to the serving process over a fixed number of calls: echo (grpc.health.v1.Health/Check), warm
ExchangeToken (after a fill pass) and all-miss ExchangeToken, on the stack bench/stack.py builds
for the exchange bench. Deterministic where the throughput bench is not.

The client is a separate process (grpc sync stub, pinned to the last CPU, the server to CPU 0)
making `--calls` calls with `--concurrency` threads over one channel each.

    PATH=/abs/bin:$PATH .venv/bin/python bench/hotpath5_syscalls.py [--calls 2000]
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack

TRACE = ""

CLIENT = r"""
import json, sys, threading
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb, token_exchange_pb2_grpc as pbg
target, kind, calls, concurrency, path = sys.argv[1:6]
calls, concurrency = int(calls), int(concurrency)
messages = [pb.ExchangeTokenRequest(**m) for m in json.load(open(path))]
def worker(index):
    channel = grpc.insecure_channel(target)
    if kind == "echo":
        stub = health_pb2_grpc.HealthStub(channel)
        call = lambda n: stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
    else:
        stub = pbg.TokenExchangeServiceStub(channel)
        call = lambda n: stub.ExchangeToken(messages[n % len(messages)], timeout=10)
    call(index)  # connect first
    sys.stdout.write("") ; barrier.wait()
    for n in range(index, calls, concurrency):
        call(n)
    channel.close()
barrier = threading.Barrier(concurrency + 1)
threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
for t in threads: t.start()
barrier.wait()
print("go", flush=True)
sys.stdin.readline()
for t in threads: t.join()
"""

_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")


def _parse(summary: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in summary.splitlines():
        match = _LINE.match(line)
        if match and match.group(3) != "total":
            counts[match.group(3)] = int(match.group(1))
    return counts


def measure(server: stack.Server, kind: str, calls: int, concurrency: int, data: Path) -> Any:
    cpus = sorted(os.sched_getaffinity(0))
    client = subprocess.Popen(
        [
            "taskset",
            "-c",
            str(cpus[-1]),
            sys.executable,
            "-c",
            CLIENT,
            server.grpc_target,
            kind,
            str(calls),
            str(concurrency),
            str(data),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert client.stdout is not None
    assert client.stdin is not None
    client.stdout.readline()  # connected, waiting for "go"
    out = Path(tempfile.mkstemp(prefix="strace-")[1])
    pid = str(server.process.pid)
    tracer = subprocess.Popen(
        ["strace", *(["-f", "-tt"] if TRACE else ["-c", "-f"]), "-o", str(out), "-p", pid],
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached to every thread
    cpu_before = server.cpu_seconds()
    client.stdin.write("go\n")
    client.stdin.flush()
    client.wait()
    cpu = server.cpu_seconds() - cpu_before
    tracer.send_signal(signal.SIGINT)
    tracer.wait()
    if TRACE:
        Path(TRACE).with_suffix(f".{kind}.{calls}.txt").write_text(out.read_text())
    counts = _parse(out.read_text())
    out.unlink()
    return {name: n / calls for name, n in sorted(counts.items())}, cpu / calls * 1e6


def main(calls: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sekisho-sys-") as tmp:
        root = Path(tmp)
        idp = stack.Idp()
        try:
            load = stack.workload()
            messages = stack.exchange_messages(idp, load)
            data = root / "messages.json"
            data.write_text(json.dumps(messages))
            stack.policy_folder(root, load)
            cpus = str(sorted(os.sched_getaffinity(0))[0])
            results: dict[str, Any] = {}
            for name, caches in (("warm", True), ("miss", False)):
                config = stack.write_config(root, idp, stack.Settings(workers=1, caches=caches))
                server = stack.start_server(root, config, cpus)
                try:
                    if name == "warm":
                        results["echo"] = measure(server, "echo", calls, concurrency, data)
                        measure(server, "exchange", len(messages), concurrency, data)  # fill
                    results[name] = measure(server, "exchange", calls, concurrency, data)
                finally:
                    server.stop()
        finally:
            idp.close()
    names = sorted({n for counts, _ in results.values() for n in counts})
    print(f"syscalls per call ({calls} calls, concurrency {concurrency})")
    print(f"{'syscall':<18}" + "".join(f"{k:>10}" for k in results))
    for name in names:
        print(f"{name:<18}" + "".join(f"{results[k][0].get(name, 0):>10.2f}" for k in results))
    print(f"{'total':<18}" + "".join(f"{sum(results[k][0].values()):>10.2f}" for k in results))
    print(f"{'cpu us (traced)':<18}" + "".join(f"{results[k][1]:>10.0f}" for k in results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--trace", default="", help="write full traces next to this path")
    args = parser.parse_args()
    TRACE = args.trace
    main(args.calls, args.concurrency)
