"""Background loops: an iteration that fails is logged, counted, and the loop goes on.

Every loop of a running service (key rotation, JWKS refresh, status flush, revocations, metrics
sampling, the OPA supervisor, the bundle poller, reloads) names itself with a `Loop`: the `loop`
label of sekisho_background_failures_total (docs/operations.md#monitoring) and the event its
failure is logged as. The composition root builds the one `LoopFailures` (over the metrics, or
counting nothing when [metrics] is off) and hands it to each loop. Standard library only.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Loop:
    """A background loop: `name` labels its failures in the metric, `event` is their log line
    (logged by `log`, the loop's own module logger, with `fields`)."""

    name: str
    event: str
    log: logging.Logger
    fields: tuple[tuple[str, str], ...] = ()


def not_counted(loop: str) -> None:
    """The count of a service with [metrics] off, and of one-shot uses that run no loop (CLI)."""


class LoopFailures:
    """Logs and counts the failed iterations of background loops, by loop name."""

    def __init__(self, count: Callable[[str], None]) -> None:
        self._count = count

    def failed(self, loop: Loop) -> None:
        """Call from the `except` block of a failed iteration: log `loop.event` with the
        traceback, and count one failure of `loop`."""
        loop.log.exception(loop.event, extra=dict(loop.fields))
        self._count(loop.name)

    async def repeat(
        self,
        loop: Loop,
        step: Callable[[], Awaitable[object]],
        delay: Callable[[], float],
        *,
        wait_first: bool = False,
    ) -> None:
        """Run until cancelled: `await step()`, then sleep `delay()` seconds (sleep first when
        `wait_first`); a step that raises is a failed iteration, and the loop goes on."""
        if wait_first:
            await asyncio.sleep(delay())
        while True:
            try:
                await step()
            except Exception:  # a background loop: log, count and go on
                self.failed(loop)
            await asyncio.sleep(delay())
