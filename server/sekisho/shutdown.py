"""What a running service closes, in the order it must: the listeners drain first, then the
background loops stop, then the stores and clients close (docs/architecture.md, "Start and stop").

service.py pushes each component's close on one AsyncExitStack as the component starts, so a
start that fails part way and a stop both unwind the same stack (last started, first closed).
Listeners and background loops start late but must close early, so each is one closer pushed
before the first of them starts, which then closes whatever was added to it.
"""

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass, field

from aiohttp import web

from sekisho.rpc.server import GrpcServer


@dataclass
class Listeners:
    """gRPC, the public HTTP listener and the admin one, and the task that keeps gRPC health in
    step with /readyz. `grace` is how long gRPC drains in-flight calls: 0 on a failed start,
    [server] shutdown_grace_seconds on stop."""

    grace: float = 0.0
    grpc: GrpcServer | None = None
    http: list[web.AppRunner] = field(default_factory=list)
    readiness: "asyncio.Task[None] | None" = None

    async def close(self) -> None:
        """Readiness first (so NOT_SERVING sticks), then drain gRPC, then close HTTP."""
        if self.readiness is not None:
            await _cancel(self.readiness)
        if self.grpc is not None:
            await self.grpc.set_serving(False)
            await self.grpc.stop(self.grace)
        for runner in self.http:
            await runner.cleanup()


class BackgroundTasks:
    """The loops a service runs beside its listeners (watchers, refreshers, flushers)."""

    def __init__(self) -> None:
        self.running: list[asyncio.Task[None]] = []

    def spawn(self, loop: Coroutine[None, None, None]) -> None:
        self.running.append(asyncio.create_task(loop))

    async def close(self) -> None:
        """Cancel every loop and wait for each to end."""
        for task in self.running:
            task.cancel()
        for task in self.running:
            await _cancel(task)


async def _cancel(task: "asyncio.Task[None]") -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
