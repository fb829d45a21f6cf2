"""Served vs in-process exchange under callgrind's cache and branch simulation: the same
instructions, and how many of them miss, when the exchange runs inside `sekisho serve` (after
grpc.aio, uvloop and grpc core's threads on the same core) and when it runs alone.

Both runs count only the interceptor-wrapped ExchangeToken (its coroutine driven to its end
inside `functools.reduce`, `--toggle-collect=functools_reduce`; the handler never suspends,
bench/hotpath5_probe.py), after `--warmup` calls run unmarked; the simulated caches see every
instruction of every thread of the process (valgrind runs them one at a time; the kernel and
other processes are not simulated). Caches: I1 and D1 32 KiB 8-way, LL 512 KiB 8-way (this
VM's per-core L2; its L3 is shared with the host's other tenants and not modelled).

  served: `valgrind ... python THIS serve CONFIG` pinned to CPU 0, ghz (concurrency 32,
          4 connections, as the bench) on CPU 1, --warmup then --calls messages;
  in process: `valgrind ... python THIS inproc CONFIG MESSAGES` on CPU 0, the same messages
          in the same order (bench/hotpath5_probe.py's FakeContext, no grpc).

    PATH=$PWD/bin:$PATH .venv/bin/python bench/hotpath8_cachesim.py [--kind miss|warm] \
        [--warmup 300] [--calls 200]
"""

import argparse
import asyncio
import contextvars
import functools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

EVENTS = (
    "Ir",
    "I1mr",
    "ILmr",
    "Dr",
    "D1mr",
    "DLmr",
    "Dw",
    "D1mw",
    "DLmw",
    "Bc",
    "Bcm",
    "Bi",
    "Bim",
)
CACHES = ["--I1=32768,8,64", "--D1=32768,8,64", "--LL=524288,8,64"]


def _marked(coro: Any) -> Any:
    """Drive a coroutine that never suspends to its end inside functools.reduce (the marker)."""
    out: list[Any] = []

    def step(_a: Any, _b: Any) -> None:
        try:
            coro.send(None)
        except StopIteration as stop:
            out.append(stop.value)
            return
        raise RuntimeError("the exchange suspended: cannot be measured inside the marker")

    functools.reduce(step, [0, 1])
    return out[0]


def serve(config: str, warmup: int, counted: str) -> int:
    """`sekisho serve` whose ExchangeToken runs under the marker after `warmup` calls."""
    from sekisho.cli import main
    from sekisho.rpc import interceptors

    original = interceptors.ErrorMappingInterceptor._wrap
    seen = [0, 0]

    def wrap(self: Any, behaviour: Any) -> Any:
        inner = original(self, behaviour)
        if getattr(behaviour, "__name__", "") != "ExchangeToken":
            return inner

        async def handler(request: Any, context: Any) -> Any:
            seen[0] += 1
            if seen[0] <= warmup:
                return await inner(request, context)
            seen[1] += 1
            return _marked(inner(request, context))

        return handler

    def write_count() -> None:
        Path(counted).write_text(str(seen[1]))

    interceptors.ErrorMappingInterceptor._wrap = wrap  # type: ignore[method-assign]
    import atexit

    atexit.register(write_count)
    return main(["serve", "--config", config])


async def _in_process(
    config: Path, messages: list[dict[str, Any]], warmup: int, calls: int
) -> None:
    import hotpath5_probe as probe
    from sekisho import service as service_module
    from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
    from sekisho.config import load_settings
    from sekisho.logs import configure_logging
    from sekisho.rpc.interceptors import ErrorMappingInterceptor
    from sekisho.rpc.servicer import TokenExchangeServicer

    captured: list[TokenExchangeServicer] = []
    original = TokenExchangeServicer.__init__

    def capture(self: TokenExchangeServicer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        captured.append(self)

    TokenExchangeServicer.__init__ = capture  # type: ignore[method-assign]
    settings = load_settings(config)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 - one per run
    service = await service_module.start_service(settings, request_id=request_id)
    try:
        wrapped = ErrorMappingInterceptor(request_id)._wrap(captured[0].ExchangeToken)
        requests = [pb.ExchangeTokenRequest(**m) for m in messages]
        for n in range(warmup):
            await wrapped(requests[n % len(requests)], probe.FakeContext())
        for n in range(calls):
            _marked(wrapped(requests[n % len(requests)], probe.FakeContext()))
    finally:
        await service.stop(0.1)
        TokenExchangeServicer.__init__ = original  # type: ignore[method-assign]


def inproc(config: str, messages: str, warmup: int, calls: int) -> int:
    from sekisho.eventloop import install as install_event_loop

    install_event_loop("uvloop")
    asyncio.run(_in_process(Path(config), json.loads(Path(messages).read_text()), warmup, calls))
    return 0


def totals(path: Path) -> dict[str, int]:
    events: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        if line.startswith(("totals:", "summary:")):
            values = [int(v) for v in line.split()[1:]]
            return dict(zip(events, values, strict=False))
    raise ValueError(f"no totals in {path}")


def _valgrind(out: Path) -> list[str]:
    return [
        "valgrind",
        "--tool=callgrind",
        "--cache-sim=yes",
        "--branch-sim=yes",
        *CACHES,
        "--toggle-collect=functools_reduce",
        f"--callgrind-out-file={out}",
    ]


def _ghz(target: str, messages: list[dict[str, Any]], total: int, cpus: str, tmp: Path) -> None:
    import loadgen

    data = tmp / "data.json"
    data.write_text(json.dumps(messages))
    command = [
        "taskset", "-c", cpus, str(loadgen.GHZ), "--insecure",
        "--protoset", str(loadgen.write_protoset(tmp / "api.protoset")),
        "--call", loadgen.EXCHANGE, "--data-file", str(data),
        "--concurrency", "32", "--connections", "4", "--timeout", "600s",
        "--total", str(total), "--disable-template-functions", "--disable-template-data",
        "--format", "json", "--output", str(tmp / "ghz.json"), target,
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((tmp / "ghz.json").read_text())
    codes = report.get("statusCodeDistribution", {})
    print(f"    ghz: {total} calls, status {codes}", flush=True)


def drive(kind: str, warmup: int, calls: int) -> None:
    import exchange_throughput as et
    import stack
    from sekisho.eventloop import install as install_event_loop

    install_event_loop("uvloop")
    me = str(Path(__file__).resolve())
    python = str(stack.REPO / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="sekisho-cachesim-") as tmp:
        root = Path(tmp)
        bench = et.Bench(root, 1, 1.0)
        try:
            config = stack.write_config(
                root, bench.idp, stack.Settings(workers=1, caches=kind == "warm")
            )
            subprocess.run(
                [stack.SEKISHO, "keys", "init", "--config", config], check=True, cwd=root
            )
            messages = root / "messages.json"
            messages.write_text(json.dumps(bench.messages))
            results: dict[str, dict[str, float]] = {}

            print(f"served {kind}, load average {os.getloadavg()[0]:.1f}", flush=True)
            out, counted = root / "served.cg", root / "served.count"
            text = config.read_text()
            grpc = text.split('grpc_listen = "', 1)[1].split('"', 1)[0]
            http_base = text.split('http_listen = "', 1)[1].split('"', 1)[0]
            command = ["taskset", "-c", "0", *_valgrind(out), python, me, "serve", str(config)]
            command += [str(warmup), str(counted)]
            with (root / "server.log").open("ab") as log:
                server = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
            try:
                stack.wait_until(
                    lambda: stack.http_ok(f"http://{http_base}/readyz"),
                    name="sekisho serve under callgrind",
                    process=server,
                    seconds=900,
                    interval=1.0,
                    detail=lambda: f"see {root / 'server.log'}",
                )
                _ghz(grpc, bench.messages, warmup, "1", root)
                _ghz(grpc, bench.messages, calls, "1", root)
            finally:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=600)
            marked = int(counted.read_text())
            results[f"served {kind}"] = {k: v / marked for k, v in totals(out).items()}
            print(f"    {marked} calls under the marker", flush=True)

            print(f"in process {kind}, load average {os.getloadavg()[0]:.1f}", flush=True)
            out = root / "inproc.cg"
            command = ["taskset", "-c", "0", *_valgrind(out), python, me, "inproc", str(config)]
            command += [str(messages), str(warmup), str(calls)]
            with (root / "inproc.log").open("ab") as log:
                subprocess.run(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, check=True)
            results[f"in-process {kind}"] = {k: v / calls for k, v in totals(out).items()}
            _print(results)
        finally:
            bench.idp.close()


def _print(results: dict[str, dict[str, float]]) -> None:
    print(f"{'per call':<10}" + "".join(f"{name:>22}" for name in results) + f"{'ratio':>8}")
    a, b = results.values()
    for event in EVENTS:
        if event in a:
            ratio = a[event] / b[event] if b.get(event) else float("nan")
            print(f"{event:<10}{a[event]:>22,.0f}{b.get(event, 0):>22,.0f}{ratio:>8.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        sys.exit(serve(sys.argv[2], int(sys.argv[3]), sys.argv[4]))
    if len(sys.argv) > 1 and sys.argv[1] == "inproc":
        sys.exit(inproc(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("miss", "warm"), default="miss")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--calls", type=int, default=200)
    arguments = parser.parse_args()
    drive(arguments.kind, arguments.warmup, arguments.calls)
