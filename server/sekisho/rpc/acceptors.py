"""Acceptors: more of a hot method's calls taken from grpc core at once ([grpc] acceptors).

grpc.aio (1.85, `AioServer._server_main_loop`) asks grpc core for the next call of each
registered method one at a time, and asks again only after the event loop has handed the last
one to its task, a few loop turns later (a Task per request, an `asyncio.wait` over every
method's request). Under load a loop turn runs an exchange, so arriving calls queue inside grpc
core, where Sekisho cannot see them: not ordered by caller (fair_queue.py), not screened against
their deadline (admission.py), and refused by core's pending bound as CANCELLED. A polite
caller's call waited there behind a flooding connection's.

`start` keeps `count` more requests outstanding for each hot method (ExchangeToken, Envoy's
Check), each asked again as soon as its call has arrived, and runs every call exactly as
grpc.aio's own loop does: `_handle_rpc` with the server's interceptors (so the admission gate
screens it first), scheduled by `_schedule_rpc_coro`, which listens for core's cancellation.
Measured in bench/results/acceptors_session14.md.

These are cygrpc's private names, the ones grpc.aio's loop calls; constraints.txt pins grpcio.
With a grpcio that lacks one of them, `start` logs `grpc_acceptors_unavailable` and returns
None: the server runs on grpc.aio's loop alone, as with `[grpc] acceptors = 0`.
"""

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
from grpc._cython import cygrpc

log = logging.getLogger(__name__)

# What the acceptors call: in cygrpc (module) and on grpc.aio's AioServer (the server's _server).
_CYGRPC_NAMES = ("_MethodResolver", "_handle_rpc", "_schedule_rpc_coro", "_RequestCallError")
_SERVER_NAMES = ("_request_registered_call", "is_running")


class _Recorder:
    """Passes what a generated `add_*Servicer_to_server` registers on to the server, keeping the
    method handlers: the acceptors run the very handler objects grpc.aio runs. Interceptors
    cache their wrapped handler per handler object (handler_cache.py); handlers built by a second
    `add_*` call were other objects, and 24 % of calls rebuilt both wraps as calls alternated
    between grpc.aio's loop and the acceptors (bench/results/redteam_session14b.md)."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: Mapping[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(service, handlers)
        for method, handler in handlers.items():
            self.handlers[f"/{service}/{method}"] = handler


def register_servicer(
    register: Callable[[Any, Any], None], servicer: object, server: grpc.aio.Server
) -> dict[str, grpc.RpcMethodHandler]:
    """The generated `register(servicer, server)`; returns {full method name: handler}, the
    handler objects it registered on `server`."""
    recorder = _Recorder(server)
    register(servicer, recorder)
    return recorder.handlers


class Acceptors:
    """The running acceptors of one server; `accepted` counts the calls they took."""

    def __init__(self) -> None:
        self.accepted = 0
        self._acceptors: list[asyncio.Task[None]] = []
        self._calls: set[asyncio.Task[Any]] = set()  # create_task keeps only a weak reference

    async def stop(self) -> None:
        """After the server stopped: core has failed their requests, so they have ended; any
        still waiting (a stop that never reached core) is cancelled."""
        for task in self._acceptors:
            task.cancel()
        await asyncio.gather(*self._acceptors, return_exceptions=True)

    def _spawn(
        self,
        server: Any,
        method: str,
        handler: grpc.RpcMethodHandler,
        interceptors: tuple[Any, ...],
    ) -> None:
        resolver = cygrpc._MethodResolver([], {method: handler})
        task = asyncio.get_running_loop().create_task(
            self._accept(server, method, resolver, interceptors), name=f"acceptor {method}"
        )
        task.add_done_callback(self._log_crash)
        self._acceptors.append(task)

    def _log_crash(self, task: "asyncio.Task[None]") -> None:
        """An acceptor ended on an error: logged with how many of its method's are left.

        Not restarted. The ways it can fail are a mismatch with grpcio's private names (a
        grpcio upgrade) and a synchronous error from grpc core's request call (an unknown
        method, a completion queue core does not know): both recur on every try, and grpc.aio's
        own loop does not re-arm after them either (its serving task ends and the server shuts
        down). A restart that fails again after taking a call cancels that call: with a
        handover that always fails, restarts (0.25 s backoff doubling to 1 s) cancelled 26 of
        240 calls in 5 s and went on at ~4 a second; without them, 4 (one per acceptor), then
        grpc.aio's loop served every call (session 15). Shutdown is not an error: core fails
        the request (_RequestCallError) and the loop ends.
        """
        if task.cancelled() or task.exception() is None:
            return
        left = sum(1 for t in self._acceptors if t.get_name() == task.get_name() and not t.done())
        log.error(
            "grpc_acceptor_failed",
            extra={"task": task.get_name(), "detail": repr(task.exception()), "left": left},
        )

    async def _accept(
        self, server: Any, method: str, resolver: Any, interceptors: tuple[Any, ...]
    ) -> None:
        name, loop = method.encode(), asyncio.get_running_loop()
        while server.is_running():
            try:
                state = await server._request_registered_call(name)
            except cygrpc._RequestCallError:
                continue  # core failed the request: shutting down ends the loop, else ask again
            call = None
            try:
                call = cygrpc._handle_rpc(method, resolver, interceptors, state, loop, False)
                task = loop.create_task(cygrpc._schedule_rpc_coro(call, state, loop, method))
            except BaseException:
                # Not handed over (say a grpcio whose _handle_rpc takes other arguments): the
                # acceptor ends for good (_log_crash says why), but first lets go of the call it
                # took, so grpc core cancels it now. Held in this task's traceback it was never
                # answered: its caller waited out its deadline (forever without one) and its
                # stream stayed allocated.
                if call is not None:
                    call.close()
                del state, call
                raise
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
            self.accepted += 1
            # A finished call's HTTP/2 stream is freed with its state: hold none while waiting.
            del state, call, task


def start(
    server: grpc.aio.Server,
    handlers: Mapping[str, grpc.RpcMethodHandler],
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    count: int,
) -> Acceptors | None:
    """`count` acceptors for each of `handlers`' methods on the started `server`; None when
    `count` is 0 or this grpcio lacks what they call (logged)."""
    if count <= 0 or not handlers:
        return None
    core = getattr(server, "_server", None)
    missing = [name for name in _CYGRPC_NAMES if not hasattr(cygrpc, name)]
    missing += [name for name in _SERVER_NAMES if not hasattr(core, name)]
    if missing:
        log.warning(
            "grpc_acceptors_unavailable",
            extra={"grpcio": grpc.__version__, "missing": missing},
        )
        return None
    acceptors = Acceptors()
    for method, handler in handlers.items():
        for _ in range(count):
            acceptors._spawn(core, method, handler, tuple(interceptors))
    return acceptors
