"""The in-process exchange's own CPU when what runs between two exchanges changes.

Same driver as bench/hotpath7_gap.py (the interceptor-wrapped handler, the bench's all-miss or
warm configuration and messages, pinned to CPU 0), but each exchange is timed alone
(`time.thread_time()` around it; median per round of `--block` calls of each mode) while what
precedes each exchange cycles call by call through:

  b2b    nothing: exchanges back to back (what the probe measures)
  sleep  the thread sleeps `--gap-us` (CPU 0 goes idle unless another task runs: the vCPU halts)
  spin   the thread busy-waits `--gap-us` in Python (same wall-clock structure, no idle)
  wake   the thread blocks on a pipe that a thread on CPU 1 writes after `--gap-us` (idle, then
         a cross-CPU wake-up, as ghz's requests arrive at a served loop)

    .venv/bin/python bench/hotpath8_idle.py [--kind miss] [--rounds 4] [--block 200]
"""

import argparse
import asyncio
import contextvars
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hotpath5_probe as probe
import stack
from sekisho import service as service_module
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import load_settings
from sekisho.eventloop import install as install_event_loop
from sekisho.logs import configure_logging
from sekisho.rpc.interceptors import ErrorMappingInterceptor
from sekisho.rpc.servicer import TokenExchangeServicer

MODES = ("b2b", "sleep", "spin", "wake")


class Waker:
    """A thread on CPU 1 that writes to a pipe `gap` seconds after each request."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self.ask_r, self.ask_w = os.pipe()
        self.go_r, self.go_w = os.pipe()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        os.sched_setaffinity(0, {1})
        while os.read(self.ask_r, 1) == b"x":
            ends = time.perf_counter() + self.gap
            while time.perf_counter() < ends:
                pass
            os.write(self.go_w, b"x")

    def wait(self) -> None:
        os.write(self.ask_w, b"x")
        os.read(self.go_r, 1)

    def close(self) -> None:
        os.write(self.ask_w, b"q")


async def _drive(
    config: Path, messages: list[dict[str, Any]], rounds: int, block: int, gap: float
) -> dict[str, list[float]]:
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
    waker = Waker(gap)
    medians: dict[str, list[float]] = {mode: [] for mode in MODES}
    try:
        wrapped = ErrorMappingInterceptor(request_id)._wrap(captured[0].ExchangeToken)
        requests = [pb.ExchangeTokenRequest(**m) for m in messages]
        for request in requests:
            await wrapped(request, probe.FakeContext())
        n = 0
        for r in range(rounds):
            times: dict[str, list[float]] = {mode: [] for mode in MODES}
            for i in range(block * len(MODES)):  # the modes interleaved call by call
                mode = MODES[i % len(MODES)]
                if mode == "sleep":
                    time.sleep(gap)  # noqa: ASYNC251 - the thread must block: CPU 0 idles
                elif mode == "spin":
                    ends = time.perf_counter() + gap
                    while time.perf_counter() < ends:
                        pass
                elif mode == "wake":
                    waker.wait()
                started = time.thread_time()
                await wrapped(requests[n % len(requests)], probe.FakeContext())
                times[mode].append(time.thread_time() - started)
                n += 1
            for mode in MODES:
                medians[mode].append(statistics.median(times[mode]) * 1e6)
            line = "  ".join(f"{mode} {medians[mode][-1]:7.0f}" for mode in MODES)
            print(f"round {r + 1} (load {os.getloadavg()[0]:.1f}): {line}", flush=True)
        return medians
    finally:
        waker.close()
        await service.stop(0.1)
        TokenExchangeServicer.__init__ = original  # type: ignore[method-assign]


def main(kind: str, rounds: int, block: int, gap_us: float) -> None:
    install_event_loop("uvloop")
    os.sched_setaffinity(0, {0})
    with tempfile.TemporaryDirectory(prefix="sekisho-idle-") as tmp:
        root = Path(tmp)
        idp = stack.Idp()
        try:
            load = stack.workload()
            messages = stack.exchange_messages(idp, load)
            stack.policy_folder(root, load)
            config = stack.write_config(root, idp, stack.Settings(workers=1, caches=kind == "warm"))
            stack.subprocess.run(
                [stack.SEKISHO, "keys", "init", "--config", config], check=True, cwd=root
            )
            os.chdir(root)
            medians = asyncio.run(_drive(config, messages, rounds, block, gap_us / 1e6))
            summary = "  ".join(f"{m} {statistics.median(v):.0f}" for m, v in medians.items())
            print(f"median of the rounds' medians, µs per {kind} exchange: {summary}")
        finally:
            idp.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--kind", choices=("miss", "warm"), default="miss")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--block", type=int, default=200)
    parser.add_argument("--gap-us", type=float, default=300.0)
    arguments = parser.parse_args()
    main(arguments.kind, arguments.rounds, arguments.block, arguments.gap_us)
