"""Hot reload of state (policies, keys): watch a directory, or poll what has no files (KMS).

The callback itself keeps the last good state when the new files fail to load. It may be a
coroutine function; its result is awaited.
"""

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

from sekisho.backoff import Backoff

log = logging.getLogger(__name__)


async def watch_directory(path: Path, on_change: Callable[[], object], what: str) -> None:
    """Run until cancelled; every batch of changes under `path` triggers one `on_change()`."""
    async for changes in watchfiles.awatch(path, debounce=300, step=50, recursive=True):
        names = sorted({Path(p).name for _, p in changes})
        log.info("files_changed", extra={"what": what, "files": names[:20]})
        try:
            result = on_change()
            if inspect.isawaitable(result):
                await result
        except Exception:  # a background loop: log and go on
            log.exception("reload_failed", extra={"what": what})


async def poll_forever(
    refresh: Callable[[], Awaitable[object]], interval: float, what: str
) -> None:
    """Run until cancelled: `await refresh()` every `interval` seconds (KMS has no files)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await refresh()
        except Exception:  # a background loop: log and go on
            log.exception("reload_failed", extra={"what": what})


async def retry_with_backoff(
    refresh: Callable[[], Awaitable[bool]],
    failing: Callable[[], object],
    what: str,
    *,
    first_seconds: float = 1.0,
    max_seconds: float = 60.0,
) -> None:
    """Run until cancelled: while `failing()`, `await refresh()` again after 1, 2, 4 … s (capped).

    A reload that failed is retried even when no file changes again (a fixed permission, KMS
    back): the service must not sit not-ready, or signing with stale keys, waiting for an event.
    """
    backoff, failures = Backoff(first_seconds, max_seconds), 0
    while True:
        await asyncio.sleep(backoff.ceiling(failures))
        if not failing():
            failures = 0
            continue
        try:
            ok = await refresh()
        except Exception:  # a background loop: log and go on
            log.exception("reload_failed", extra={"what": what})
            ok = False
        failures = 0 if ok else failures + 1
        delay = backoff.ceiling(failures)
        if not ok:
            log.warning("reload_retry_scheduled", extra={"what": what, "in_seconds": delay})
