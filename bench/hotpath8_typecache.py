"""Served vs in-process exchange: exact counts of CPython's type-attribute cache work per call.

CPython 3.11's `_PyType_Lookup` (attribute lookup on a type, behind every generic getattr and
every Cython attribute access) first probes a direct-mapped 4,096-entry cache indexed by
`(type version tag ^ (name address >> 3)) & 4095`; on a miss it calls `find_name_in_mro` (a dict
lookup per class in the MRO). A class modified at runtime goes through `PyType_Modified` and
loses its version tag. This counts, with uprobes on libpython (`perf probe`, root only) and `perf
stat -t` on the loop thread only, how often each runs over a fixed number of calls:

  served: `sekisho serve` pinned to CPU 0 under ghz (echo, then the all-miss or warm exchange),
          counted against the audit lines written in the window (echo: ghz's request count);
  in process: the interceptor-wrapped handler driven by hand over the same messages
          (bench/hotpath7_gap.py's driver, no grpc).

Counts, not times: a uprobe costs a trap per hit, so the runs are slow but the counts are exact.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/hotpath8_typecache.py [--kind miss] [--calls 600]
"""

import argparse
import asyncio
import contextvars
import logging
import os
import signal
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

LIBPYTHON = Path(sys.base_prefix) / "lib" / "libpython3.11.so.1.0"
FUNCTIONS = ("_PyType_Lookup", "find_name_in_mro", "PyType_Modified", "type_new", "type_setattro")
GROUP = "sekisho8"


def add_probes() -> list[str]:
    events = []
    for name in FUNCTIONS:
        event = f"{GROUP}:{name.lstrip('_')}"
        subprocess.run(
            ["perf", "probe", "-q", "-x", str(LIBPYTHON), f"{event}={name}"],
            check=True,
        )
        events.append(event)
    return events


def remove_probes() -> None:
    subprocess.run(["perf", "probe", "-q", "-d", f"{GROUP}:*"], check=False)


class Stat:
    """`perf stat` of the given events on one thread, from start() to stop()."""

    def __init__(self, tid: int, events: list[str], out: Path) -> None:
        self.command = ["perf", "stat", "-x", ",", "-o", str(out), "-t", str(tid)]
        for event in events:
            self.command += ["-e", event]
        self.out = out

    def start(self) -> None:
        self.process = subprocess.Popen(self.command)
        time.sleep(0.5)  # attached

    def stop(self) -> dict[str, int]:
        self.process.send_signal(signal.SIGINT)
        self.process.wait()
        counts = {}
        for line in self.out.read_text().splitlines():
            fields = line.split(",")
            if len(fields) > 3 and fields[0].strip().isdigit():
                counts[fields[2].split(":")[-1]] = int(fields[0])
        return counts


def served(bench: et.Bench, kind: str, calls: int, events: list[str]) -> tuple[dict[str, int], int]:
    server = bench.scenario(kind, stack.Settings(workers=1, caches=kind == "warm"))
    try:
        call, messages = (ECHO, [{}]) if kind == "echo" else (EXCHANGE, bench.messages)
        if kind == "warm":
            run_ghz("fill", server, call, messages, total=len(messages), cpus=bench.load_cpus)
        run_ghz("w", server, call, messages, seconds=1, cpus=bench.load_cpus)
        log = bench.root / "server.log"
        lines = log.read_bytes().count(b"token_exchanged")
        stat = Stat(server.process.pid, events, bench.root / f"{kind}.stat")
        stat.start()
        run_ghz("x", server, call, messages, total=calls, cpus=bench.load_cpus)
        counts = stat.stop()
        done = calls if kind == "echo" else log.read_bytes().count(b"token_exchanged") - lines
        return counts, done
    finally:
        server.stop()


async def _in_process(
    config: Path, messages: list[dict[str, Any]], calls: int, events: list[str], out: Path
) -> tuple[dict[str, int], int]:
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
        for request in requests:  # warm-up (and, with caches on, the fill)
            await wrapped(request, probe.FakeContext())
        stat = Stat(threading.get_native_id(), events, out)
        await asyncio.to_thread(stat.start)
        for n in range(calls):
            await wrapped(requests[n % len(requests)], probe.FakeContext())
        return await asyncio.to_thread(stat.stop), calls
    finally:
        await service.stop(0.1)
        TokenExchangeServicer.__init__ = original  # type: ignore[method-assign]


def main(kind: str, calls: int) -> None:
    install_event_loop("uvloop")
    remove_probes()
    events = add_probes()
    try:
        with tempfile.TemporaryDirectory(prefix="sekisho-tc-") as tmp:
            bench = et.Bench(Path(tmp), 1, 1.0)
            try:
                print(f"load average {os.getloadavg()[0]:.1f}", flush=True)
                rows: dict[str, dict[str, float]] = {}
                for each in ("echo", kind):
                    counts, done = served(bench, each, calls, events)
                    rows[f"served {each}"] = {k: v / done for k, v in counts.items()}
                    print(f"served {each}: {done} calls {counts}", flush=True)
                config = stack.write_config(
                    bench.root, bench.idp, stack.Settings(workers=1, caches=kind == "warm")
                )
                cwd, cpus = Path.cwd(), os.sched_getaffinity(0)
                os.chdir(bench.root)
                os.sched_setaffinity(0, {0})
                try:
                    counts, done = asyncio.run(
                        _in_process(config, bench.messages, calls, events, bench.root / "p.stat")
                    )
                finally:
                    os.chdir(cwd)
                    os.sched_setaffinity(0, cpus)
                print(f"in process {kind}: {done} calls {counts}", flush=True)
                rows[f"in-process {kind}"] = {k: v / done for k, v in counts.items()}
                echo, exchange = rows["served echo"], rows[f"served {kind}"]
                rows[f"served {kind} - echo"] = {k: exchange[k] - echo[k] for k in exchange}
                names = [f.lstrip("_") for f in FUNCTIONS]
                print(f"{'per call':<20}" + "".join(f"{n:>20}" for n in names))
                for row, values in rows.items():
                    print(f"{row:<20}" + "".join(f"{values.get(n, 0):>20.1f}" for n in names))
            finally:
                bench.idp.close()
    finally:
        remove_probes()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("miss", "warm"), default="miss")
    parser.add_argument("--calls", type=int, default=600)
    arguments = parser.parse_args()
    main(arguments.kind, arguments.calls)
