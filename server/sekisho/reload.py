"""Hot reload of file-backed state (policies, keys): watch a directory, call back on change.

The callback itself keeps the last good state when the new files fail to load.
"""

import logging
from collections.abc import Callable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)


async def watch_directory(path: Path, on_change: Callable[[], object], what: str) -> None:
    """Run until cancelled; every batch of changes under `path` triggers one `on_change()`."""
    async for changes in watchfiles.awatch(path, debounce=300, step=50, recursive=True):
        names = sorted({Path(p).name for _, p in changes})
        log.info("files_changed", extra={"what": what, "files": names[:20]})
        try:
            on_change()
        except Exception:  # a background loop: log, count, go on
            log.exception("reload_failed", extra={"what": what})
