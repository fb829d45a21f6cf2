"""Served vs in-process exchange, by shared object: where the loop thread's CPU goes.

One round = three runs, each server or probe pinned to CPU 0 (ghz on CPU 1), `perf record -e
cpu-clock` on the loop thread only: (1) `sekisho serve` under ghz echo, (2) under ghz all-miss
ExchangeToken (caches off, the bench's 3,000 messages: 1,000 users x 3 audiences), (3) the
interceptor-wrapped handler driven in process over the same messages (bench/hotpath5_probe.py's
FakeContext, no grpc).
Per-call CPU of the loop thread is exact (/proc for the served runs, counted against the audit
lines written in the same window; thread_time in process); perf gives its split by object.
The host's speed drifts by ±30 % between runs at load 5-10, so read a round's columns against
its own crypto row (OpenSSL in `_rust`, the same instructions served or not).

    PATH=$PWD/bin:$PATH .venv/bin/python bench/hotpath7_gap.py [--kind miss|warm] [--rounds 2]

`--kind warm`: caches on, every message exchanged once first (served: a ghz fill pass).
"""

import argparse
import asyncio
import contextvars
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exchange_throughput as et
import hotpath5_probe as probe
import stack
from loadgen import ECHO, EXCHANGE, run_ghz
from sekisho import service as service_module
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import load_settings
from sekisho.eventloop import install as install_event_loop
from sekisho.logs import configure_logging
from sekisho.rpc.interceptors import ErrorMappingInterceptor
from sekisho.rpc.servicer import TokenExchangeServicer


def _thread_cpu(pid: int) -> float:
    text = Path(f"/proc/{pid}/task/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / stack.CLK_TCK


def _perf(tid: int, seconds: float, out: Path) -> None:
    command = ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-t", str(tid)]
    subprocess.run([*command, "-o", str(out), "--", "sleep", str(seconds)], check=True)


def by_object(data: Path, per_call_us: float) -> dict[str, float]:
    """µs per call by shared object: perf's sample shares times the exact per-call CPU."""
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--sort", "dso", "--stdio", "-F", "sample,dso"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    samples: dict[str, int] = {}
    for line in report.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        count, name = line.split(None, 1)
        name = "[JIT: wasm]" if name.startswith("[JIT]") else name.strip()
        samples[name] = samples.get(name, 0) + int(count)
    total = sum(samples.values())
    return {name: n / total * per_call_us for name, n in samples.items()}


def served(bench: et.Bench, kind: str, seconds: float, out: Path) -> float:
    """Loop-thread CPU µs per call of `sekisho serve` under ghz, perf data written to `out`."""
    server = bench.scenario(kind, stack.Settings(workers=1, caches=kind == "warm"))
    try:
        call, messages = (ECHO, [{}]) if kind == "echo" else (EXCHANGE, bench.messages)
        if kind == "warm":  # every message's subject and decision cached first
            run_ghz("fill", server, call, messages, total=len(messages), cpus=bench.load_cpus)
        run_ghz("p", server, call, messages, seconds=1, cpus=bench.load_cpus)
        runs: list[Any] = []
        load = threading.Thread(
            target=lambda: runs.append(
                run_ghz("x", server, call, messages, seconds=seconds + 3, cpus=bench.load_cpus)
            )
        )
        load.start()
        time.sleep(1.0)
        pid, log = server.process.pid, bench.root / "server.log"
        lines, cpu, started = (
            log.read_bytes().count(b"token_exchanged"),
            _thread_cpu(pid),
            time.monotonic(),
        )
        _perf(pid, seconds, out)
        cpu, elapsed = _thread_cpu(pid) - cpu, time.monotonic() - started
        calls = log.read_bytes().count(b"token_exchanged") - lines
        load.join()
        if kind == "echo":  # no audit line: the run's own rate over the same window
            calls = int(runs[0].throughput * elapsed)
        return cpu / calls * 1e6
    finally:
        server.stop()


async def _in_process(
    config: Path, messages: list[dict[str, Any]], seconds: float, out: Path
) -> float:
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
        for request in requests:
            await wrapped(request, probe.FakeContext())
        perf = threading.Thread(target=_perf, args=(threading.get_native_id(), seconds + 1, out))
        perf.start()
        await asyncio.sleep(0.5)  # perf attached
        calls, cpu, ends = 0, time.thread_time(), time.monotonic() + seconds
        while time.monotonic() < ends:
            for request in requests[:300]:
                await wrapped(request, probe.FakeContext())
            calls += 300
        cpu = time.thread_time() - cpu
        perf.join()  # the loop thread idles while perf finishes: no samples
        return cpu / calls * 1e6
    finally:
        await service.stop(0.1)
        TokenExchangeServicer.__init__ = original  # type: ignore[method-assign]


def main(rounds: int, seconds: float, kind: str) -> None:
    install_event_loop("uvloop")
    with tempfile.TemporaryDirectory(prefix="sekisho-gap-") as tmp:
        bench = et.Bench(Path(tmp), 1, seconds)
        settings = stack.Settings(workers=1, caches=kind == "warm")
        config = stack.write_config(bench.root, bench.idp, settings)
        try:
            for n in range(1, rounds + 1):
                print(f"round {n}, load average {os.getloadavg()[0]:.1f}", flush=True)
                columns: dict[str, dict[str, float]] = {}
                for each in ("echo", kind):
                    data = bench.root / f"{each}.data"
                    columns[f"served {each}"] = by_object(data, served(bench, each, seconds, data))
                cwd, cpus = Path.cwd(), os.sched_getaffinity(0)
                os.chdir(bench.root)
                os.sched_setaffinity(0, {0})  # where the server ran
                try:
                    data = bench.root / "probe.data"
                    per_call = asyncio.run(_in_process(config, bench.messages, seconds, data))
                finally:
                    os.chdir(cwd)
                    os.sched_setaffinity(0, cpus)
                columns[f"in-process {kind}"] = by_object(data, per_call)
                _print(columns, kind)
        finally:
            bench.idp.close()


def _print(columns: dict[str, dict[str, float]], kind: str) -> None:
    names = sorted(
        {k for c in columns.values() for k in c},
        key=lambda k: -max(c.get(k, 0) for c in columns.values()),
    )
    echo, exchange = columns["served echo"], columns[f"served {kind}"]
    columns[f"served {kind} - echo"] = {k: exchange.get(k, 0) - echo.get(k, 0) for k in names}
    print(f"{'loop thread, µs per call':<34}" + "".join(f"{c:>19}" for c in columns))
    print(f"{'total':<34}" + "".join(f"{sum(c.values()):>19.0f}" for c in columns.values()))
    for name in names[:12]:
        print(f"{name[:34]:<34}" + "".join(f"{c.get(name, 0):>19.0f}" for c in columns.values()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--kind", choices=("miss", "warm"), default="miss")
    arguments = parser.parse_args()
    main(arguments.rounds, arguments.seconds, arguments.kind)
