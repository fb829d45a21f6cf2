"""`sekisho serve --config FILE` that records, per gated call, when it reached each stage of the
worker (bench/polite_timeline.py): the admission gate's entry (the call's task has started), the
request message received (`context.read()`), the slot granted (admission), and the answer. Wall
times from time.perf_counter, keyed by the call's task; written to $TIMELINE_OUT as JSON at exit.

    BENCH_SRV=bench/polite_timeline_server.py TIMELINE_OUT=/tmp/t.json sekisho serve ...
"""

import asyncio
import atexit
import json
import os
import sys
import time
from typing import Any

from sekisho import admission
from sekisho.cli import main
from sekisho.rpc import admission_gate

_calls: dict[int, list[Any]] = {}  # id(task) -> [peer, entry, read, granted, end]
_done: list[list[Any]] = []
_original_gate = admission_gate.AdmissionGate._gate
_original_acquire = admission.Admission._acquire
_original_release = admission.Admission._release
TICK = 0.001
_turns: list[list[float]] = []  # [tick time, its lag, exchanges ended since, limit, in flight]
_state: dict[str, Any] = {"ended": 0, "admission": None}


def _gate(self: Any, behaviour: Any, deserialize: Any, *, screen: bool) -> Any:
    if not screen:  # another method read through the gate (GetJwks, Health): not timed
        return _original_gate(self, behaviour, deserialize, screen=screen)

    async def timed_behaviour(message: Any, context: Any) -> Any:
        record = _calls.get(id(asyncio.current_task()))
        if record is not None:
            record[2] = time.perf_counter()
        return await behaviour(message, context)

    inner = _original_gate(self, timed_behaviour, deserialize, screen=screen)

    async def gated(request: Any, context: Any) -> Any:
        if not _state.get("turning"):
            _state["turning"] = True
            asyncio.get_running_loop().call_soon(_turn, time.perf_counter())
        key = id(asyncio.current_task())
        record = _calls[key] = [context.peer(), time.perf_counter(), 0.0, 0.0, 0.0, "ok"]
        try:
            return await inner(request, context)
        except BaseException:
            record[5] = "refused"
            raise
        finally:
            record[4] = time.perf_counter()
            _done.append(_calls.pop(key))

    return gated


async def _acquire(self: Any, flow: str, user: str, deadline: float) -> float:
    granted = await _original_acquire(self, flow, user, deadline)
    record = _calls.get(id(asyncio.current_task()))
    if record is not None:
        record[3] = time.perf_counter()
    return granted


def _release(self: Any, granted: float) -> None:
    _state["admission"] = self
    _state["ended"] += 1
    _original_release(self, granted)


def _turn(due: float) -> None:
    """Every millisecond (a call_at chain, so an idle loop still sleeps in epoll): how late this
    tick ran (the loop's lag), how many exchanges ended since the last tick, the admission limit
    and the exchanges in flight. A call_soon chain (sessions 15-16) kept the loop from ever
    blocking: it burned the core grpc's threads share even on an idle server and inflated the
    very waits this probe measures (start→read p90 5 ms idle; 0.1 ms with this tick)."""
    now = time.perf_counter()
    gate = _state["admission"]
    limit = gate.concurrency_limit if gate is not None else 0
    flying = gate._in_flight if gate is not None else 0
    _turns.append([now, now - due, _state["ended"], limit, flying])
    _state["ended"] = 0
    loop = asyncio.get_running_loop()
    loop.call_at(loop.time() + TICK, _turn, now + TICK)


def _dump() -> None:
    path = os.environ.get("TIMELINE_OUT")
    if path:
        with open(path, "w") as out:
            json.dump({"calls": _done, "turns": _turns[-200_000:]}, out)


admission_gate.AdmissionGate._gate = _gate  # type: ignore[method-assign]
admission.Admission._acquire = _acquire  # type: ignore[method-assign]
admission.Admission._release = _release  # type: ignore[method-assign]
atexit.register(_dump)
if os.environ.get("SWITCH_INTERVAL"):
    sys.setswitchinterval(float(os.environ["SWITCH_INTERVAL"]))
sys.exit(main(["serve", "--config", sys.argv[1]]))
