"""Deterministic evidence for the hot path, part 5: how many times one ExchangeToken call
suspends its coroutine (each suspension is a full event-loop turn in grpc.aio), and where.

The service is started in process by `start_service` from the same config bench/stack.py writes
for the exchange bench (workers = 1, caches on for `warm`, off for `miss`, metrics on, INFO
logging to /dev/null), and the servicer's ExchangeToken, wrapped by the real interceptor, is
driven by hand: every object the coroutine yields to the loop is counted with the innermost
frame that awaited it. Run from a checkout (base: PYTHONPATH=BASE/server, run in BASE):

    .venv/bin/python bench/hotpath5_probe.py [--calls 300]
"""

import argparse
import asyncio
import collections
import contextvars
import functools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import stack
from sekisho import service as service_module
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import load_settings
from sekisho.eventloop import install as install_event_loop
from sekisho.logs import configure_logging
from sekisho.models import Caller, ExchangeResult
from sekisho.policy.input import build_input
from sekisho.policy.outcome import granted
from sekisho.rpc import servicer as servicer_module
from sekisho.rpc.interceptors import ErrorMappingInterceptor
from sekisho.rpc.servicer import TokenExchangeServicer
from sekisho.validation import build_request

PROFILE = False
SORT = "tottime"
CALLGRIND = False
THRASH = 0
PIECES = 0
ONLY = ""


class FakeContext:
    """What the servicer and interceptor read from a grpc.aio context on a plaintext listener."""

    def __init__(self) -> None:
        self.trailers: Any = ()

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self.trailers = metadata

    def time_remaining(self) -> float:
        return 3600.0  # under valgrind a first call can take longer than 10 s

    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    async def abort_with_status(self, status: Any) -> None:
        raise RuntimeError(f"aborted: {status}")


def _where(coro: Any) -> str:
    """The innermost Python frame of a suspended coroutine chain."""
    frame_owner, where = coro, "?"
    while frame_owner is not None:
        frame = getattr(frame_owner, "cr_frame", None) or getattr(frame_owner, "gi_frame", None)
        if frame is not None:
            code = frame.f_code
            where = f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}"
        frame_owner = getattr(frame_owner, "cr_await", None) or getattr(
            frame_owner, "gi_yieldfrom", None
        )
    return where


class Counted:
    """Awaits `coro`, counting each object it yields to the loop and where it yielded."""

    def __init__(self, coro: Any, tally: collections.Counter[str]) -> None:
        self._coro, self._tally = coro, tally

    def __await__(self) -> Any:
        coro, value, error = self._coro, None, None
        while True:
            try:
                out = coro.throw(error) if error is not None else coro.send(value)
            except StopIteration as stop:
                return stop.value
            self._tally[f"{type(out).__name__} at {_where(coro)}"] += 1
            try:
                value, error = (yield out), None
            except BaseException as exc:  # handed back to the coroutine
                value, error = None, exc


def _run_sync(coro: Any) -> Any:
    """Run a coroutine that never suspends (as the probe showed) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the exchange suspended: cannot be measured inside the marker")


def _under_marker(action: Any) -> int:
    """Run `action` inside functools.reduce (its C function `functools_reduce`), so that
    `valgrind --tool=callgrind --toggle-collect=functools_reduce` counts only its instructions
    (nothing on the exchange path calls reduce). A ctypes-called C marker does not work:
    callgrind does not see libffi's call as a function entry."""
    results: list[Any] = []
    functools.reduce(lambda _a, _b: results.append(action()), [0, 1])
    return len(results)


def _profilers() -> tuple[Any, Any]:
    """cProfile and pstats, imported when asked for (--profile)."""
    import cProfile
    import pstats

    return cProfile, pstats


def _cpu_of(action: Any) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


async def _pieces(servicer: Any, wrapped: Any, requests: list[Any]) -> dict[str, Any]:
    """The exchange and its parts, each a function running them once over every request, on
    inputs prepared here from the same requests (the parts read the service's own objects)."""
    exchanger = servicer._exchanger
    call_type = type(servicer).__module__
    params = [servicer_module.params_of(r, exchanger._limits) for r in requests]
    caller = Caller()
    built = [build_request(p, caller, exchanger._limits) for p in params]
    subjects = [
        await exchanger._verifier.verify(b.subject_token, b.subject_token_type) for b in built
    ]
    clock = exchanger._clock
    documents = [build_input(b, s, None, clock.now()) for b, s in zip(built, subjects, strict=True)]
    decisions = [await exchanger._policy.decide(d) for d in documents]
    grants = [granted(d, b) for d, b in zip(decisions, built, strict=True)]
    minted = [
        await exchanger._minter.mint(b, s, None, g)
        for b, s, g in zip(built, subjects, grants, strict=True)
    ]
    results = [ExchangeResult(minted=m, expires_in=300, decision_id="d") for m in minted]
    assert call_type
    instruments = exchanger._instruments

    def hooks() -> None:
        for b in built:
            with instruments.exchange(b.audience, "grpc") as scope:
                for stage in ("verify", "policy", "sign"):
                    # (scope or instruments): the stages hung off the instruments before session 7
                    with (scope or instruments).stage(stage):
                        pass

    verifier, policy, minter, audit = (
        exchanger._verifier,
        exchanger._policy,
        exchanger._minter,
        exchanger._audit,
    )
    every = list(zip(built, subjects, documents, grants, minted, strict=True))
    return {
        "exchange (interceptor+servicer)": lambda: [
            _run_sync(wrapped(r, FakeContext())) for r in requests
        ],
        "params_of + build_request": lambda: [
            build_request(
                servicer_module.params_of(r, exchanger._limits), caller, exchanger._limits
            )
            for r in requests
        ],
        "subject: verify (cache or not)": lambda: [
            _run_sync(verifier.verify(b.subject_token, b.subject_token_type)) for b in built
        ],
        "build_input": lambda: [
            build_input(b, s, None, clock.now()) for b, s in zip(built, subjects, strict=True)
        ],
        "policy: decide (cache or not)": lambda: [_run_sync(policy.decide(d)) for d in documents],
        "granted": lambda: [granted(d, b) for d, b in zip(decisions, built, strict=True)],
        "mint (sign + self-verify)": lambda: [
            _run_sync(minter.mint(b, s, None, g)) for b, s, _d, g, _m in every
        ],
        "audit line": lambda: [
            audit.exchanged(b, s, m, "d", reason="") for b, s, _d, _g, m in every
        ],
        "metric hooks": hooks,
        "response_of": lambda: [servicer_module.response_of(r) for r in results],
    }


async def _thrash_effect(wrapped: Any, requests: list[Any]) -> None:
    """CPU per exchange back to back against the same with the data caches flushed (a copy
    of THRASH KiB) between exchanges: what the pipeline costs when grpc and the loop ran in
    between, as in a server. Only the exchange is timed; min over 5 passes."""
    buffer = bytearray(THRASH * 1024)
    for thrash in (False, True, False, True, False, True):
        best = []
        for _ in range(3):
            spent = 0.0
            for request in requests:
                if thrash:
                    bytes(buffer)
                started = time.thread_time()
                await wrapped(request, FakeContext())
                spent += time.thread_time() - started
            best.append(spent / len(requests) * 1e6)
        print(f"  {'caches flushed' if thrash else 'back to back':<15} {min(best):6.0f} us")


async def _drive(settings_path: Path, messages: list[dict[str, Any]], calls: int) -> None:
    captured: list[TokenExchangeServicer] = []
    original_init = TokenExchangeServicer.__init__

    def capture(self: TokenExchangeServicer, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        captured.append(self)

    TokenExchangeServicer.__init__ = capture  # type: ignore[method-assign]
    os.chdir(settings_path.parent)
    settings = load_settings(settings_path)
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
    configure_logging(settings.logging.level, settings.logging.format, request_id)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115, ASYNC230 - one per run
    service = await service_module.start_service(settings, request_id=request_id)
    try:
        servicer = captured[0]
        interceptor = ErrorMappingInterceptor(request_id)  # as create_grpc_server builds it
        wrapped = interceptor._wrap(servicer.ExchangeToken)
        requests = [pb.ExchangeTokenRequest(**m) for m in messages]
        for request in requests[:calls]:  # fill the caches (warm) / warm the allocator (miss)
            await wrapped(request, FakeContext())
        tally: collections.Counter[str] = collections.Counter()
        started = time.process_time()
        for request in requests[:calls]:
            await Counted(wrapped(request, FakeContext()), tally)
        cpu = (time.process_time() - started) / calls * 1e6
        total = sum(tally.values())
        print(f"  yields per call: {total / calls:.2f}  (in-process CPU {cpu:.0f} us per call)")
        for where, count in tally.most_common():
            print(f"    {count / calls:5.2f}  {where}")
        if THRASH:
            await _thrash_effect(wrapped, requests[:calls])
        pieces = await _pieces(servicer, wrapped, requests[:calls])
        if CALLGRIND:
            for name, piece in pieces.items():  # one callgrind dump per piece (--dump-after)
                _under_marker(piece)
                print(f"  under the marker: {name}", flush=True)
        if PIECES:
            for name, piece in pieces.items():
                best = min(_cpu_of(piece) for _ in range(PIECES))
                print(f"  {name:<28} {best / calls * 1e6:7.1f} us", flush=True)
        if PROFILE:
            cProfile, pstats = _profilers()
            profiler = cProfile.Profile()
            profiler.enable()
            for request in requests[:calls]:
                await wrapped(request, FakeContext())
            profiler.disable()
            pstats.Stats(profiler).sort_stats(SORT).print_stats(45)
    finally:
        await service.stop(0.1)


def main(calls: int) -> None:
    install_event_loop("uvloop")
    with tempfile.TemporaryDirectory(prefix="sekisho-probe-") as tmp:
        root = Path(tmp)
        idp = stack.Idp()
        try:
            load = stack.workload()
            messages = stack.exchange_messages(idp, load)
            stack.policy_folder(root, load)
            for name, caches in (("warm", True), ("miss", False)):
                if ONLY and name != ONLY:
                    continue
                config = stack.write_config(root, idp, stack.Settings(workers=1, caches=caches))
                if not (root / "keys").exists():
                    stack.subprocess.run(
                        [stack.SEKISHO, "keys", "init", "--config", config], check=True, cwd=root
                    )
                print(name)
                asyncio.run(_drive(config, messages, calls))
        finally:
            idp.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    PROFILE = parser.parse_known_args()[0].profile
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--pieces", type=int, default=0, help="time each part, min of N")
    parser.add_argument("--thrash", type=int, default=0, help="KiB copied between exchanges")
    known = parser.parse_known_args()[0]
    SORT, CALLGRIND, ONLY, THRASH = known.sort, known.callgrind, known.only, known.thrash
    PIECES = known.pieces
    main(parser.parse_args().calls)
