"""`sekisho serve --config FILE` with process-level knobs a TOML key cannot reach, for A/B runs
(BENCH_SRV-style hook, as bench/polite_timeline_server.py). Each knob is a comment line in the
config, so one `bench/overload_ab.py` run can alternate them (a variant's extra TOML is appended
to the config):

    # bench: ARRIVAL_TURNS=2        admission.ARRIVAL_TURNS (loop turns before an exchange)
    # bench: SWITCH_INTERVAL=0.0005 sys.setswitchinterval (the GIL hand-off)
    # bench: NICE_LOOP=10           the event-loop thread alone at this nice, 2 s after start
                                    (grpc's threads, started before, keep theirs)
    # bench: PENDING_HARD_FACTOR=1  protection.PENDING_HARD_FACTOR (grpc core's hard pending
                                    bound as a multiple of [grpc] max_pending_calls)

With $GC_OUT set, the cyclic collector's pauses per generation (count, total, max) are written
to $GC_OUT.<pid> at exit. BENCH_SRV must be an absolute path (the server runs in its own
folder). bench/results/polite_session17.md used these:

    BENCH_SRV=$PWD/bench/variant_hook.py PATH=$PWD/bin:$PATH \\
        .venv/bin/python bench/overload_ab.py --rate 1180 --rounds 3 --only-abusive \\
        t1= 't2=# bench: ARRIVAL_TURNS=2'
"""

import asyncio
import atexit
import gc
import json
import os
import re
import sys
import threading
import time
from typing import Any

import sekisho.commands.serve as serve_command
from sekisho import admission, protection
from sekisho.cli import main

KNOB = re.compile(
    r"^# bench: (ARRIVAL_TURNS|SWITCH_INTERVAL|NICE_LOOP|PENDING_HARD_FACTOR)=(\S+)$", re.MULTILINE
)


def _lower_loop_thread(nice: int) -> None:
    """Once serving, set the event-loop thread's nice (Linux: per thread)."""
    install = serve_command.install_event_loop

    def install_then_schedule(choice: Any) -> None:
        install(choice)
        policy = asyncio.get_event_loop_policy()
        new_event_loop = type(policy).new_event_loop

        def new_loop(self: Any) -> asyncio.AbstractEventLoop:
            loop: asyncio.AbstractEventLoop = new_event_loop(self)
            loop.call_later(2.0, os.setpriority, os.PRIO_PROCESS, threading.get_native_id(), nice)
            return loop

        type(policy).new_event_loop = new_loop  # type: ignore[method-assign]

    serve_command.install_event_loop = install_then_schedule


def _record_gc(out: str) -> None:
    started: list[float] = [0.0]
    pauses: dict[int, list[float]] = {}

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            ms = (time.perf_counter() - started[0]) * 1e3
            pauses.setdefault(info["generation"], []).append(ms)

    def dump() -> None:
        summary = {
            str(generation): {"count": len(ms), "total_ms": sum(ms), "max_ms": max(ms)}
            for generation, ms in pauses.items()
        }
        with open(f"{out}.{os.getpid()}", "w") as file:
            json.dump(summary, file)

    gc.callbacks.append(callback)
    atexit.register(dump)


def _apply(config_text: str) -> None:
    for name, value in KNOB.findall(config_text):
        if name == "ARRIVAL_TURNS":
            admission.ARRIVAL_TURNS = int(value)
        elif name == "PENDING_HARD_FACTOR":
            protection.PENDING_HARD_FACTOR = float(value)  # type: ignore[assignment]
        elif name == "SWITCH_INTERVAL":
            sys.setswitchinterval(float(value))
        else:
            _lower_loop_thread(int(value))
    if os.environ.get("GC_OUT"):
        _record_gc(os.environ["GC_OUT"])


if __name__ == "__main__":
    with open(sys.argv[1]) as config:
        _apply(config.read())
    sys.exit(main(["serve", "--config", sys.argv[1]]))
