"""Hot reload of state (policies, keys): watch a directory, or poll what has no files (KMS); a
file whose changes may raise no event here (a volume shared with other hosts) is also polled.

The callback itself keeps the last good state when the new files fail to load. It may be a
coroutine function; its result is awaited. A callback that raises is logged (`reload_failed`)
and counted as a failure of loop `<what>_reload` (loops.py), and the loop goes on; a SIGHUP's
reload (`reload_now`) is loop `sighup_reload`.
"""

import asyncio
import inspect
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from sekisho.backoff import Backoff
from sekisho.loops import Loop, LoopFailures

log = logging.getLogger(__name__)


def reload_loop(what: str) -> Loop:
    """The loop that reloads `what` ("keys", "policy bundle" → loop "policy_bundle_reload")."""
    return Loop(f"{what.replace(' ', '_')}_reload", "reload_failed", log, (("what", what),))


async def reload_now(
    reloaders: Sequence[Callable[[], Awaitable[object]]], failures: LoopFailures
) -> None:
    """SIGHUP: run every reloader now, one after another. Each logs its own success or failure;
    one that raises is logged (`reload_failed`, what=sighup) and counted as loop `sighup_reload`,
    and the next one still runs."""
    for reload in reloaders:
        try:
            await reload()
        except Exception:  # a signal-driven background action: log, count and go on
            failures.failed(reload_loop("sighup"))


# How often a watched folder's path is resolved again (a few lstat calls and a stat).
FOLLOW_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class _Folder:
    """The folder a watched path names: where it resolves to, and which folder that is."""

    path: str
    device: int
    inode: int


def _named(path: Path) -> _Folder | None:
    """The folder `path` names now, None when it names nothing (blocking: a few syscalls)."""
    target = os.path.realpath(path)
    try:
        found = os.stat(target)
    except OSError:
        return None
    return _Folder(target, found.st_dev, found.st_ino)


async def watch_directory(
    path: Path,
    on_change: Callable[[], object],
    what: str,
    failures: LoopFailures,
    ignore: Callable[[str], bool] | None = None,
    *,
    follow_seconds: float = FOLLOW_SECONDS,
    catch_up: bool | Callable[[], object] = False,
) -> None:
    """Run until cancelled; every batch of changes under `path` triggers one `on_change()`.
    `ignore(name)`: files whose changes are neither logged nor a reason to reload (the owner's
    scratch files, besides watchfiles' defaults such as editor swap files). `catch_up`: the
    state was loaded before this watch began (a service loads its keys first, then policy,
    the status store and listeners, then its watches: seconds), so `on_change()` (or the
    callable given, one that reloads only what changed since the load) runs once the watch has
    begun, and a change made in between is not lost (red team session 17: a key revoked while
    a replica started stayed published and signing there).

    inotify watches the folder `path` named when the watch began, wherever it goes. `path` (or
    a folder above it) a symlink repointed at another folder in one rename (git-sync, `current
    -> releases/N`), or the folder itself replaced by another (renamed over it, or deleted and
    made again) raises no event in that folder: the old policy served until restart (red team
    sessions 16, 17). So which folder `path` names is looked at again every `follow_seconds`;
    another folder counts as a change, and that folder is watched, then reloaded: looked at
    before the reload, so a second repoint during the reload is a change too, and watched
    before it, so an edit there during the reload is one too. A moment when `path` names
    nothing is one more change, not the end of the watch (red team session 17: the watch
    raised FileNotFoundError and ended, silently)."""
    loop = reload_loop(what)
    watched = _watch_filter(ignore)
    # The first look on the loop, like the watch set-up right after it (watchfiles adds its
    # inotify watches in RustNotify's constructor): the watch begins in this task's first
    # step. Looked at in a thread, a start's first step ended at the thread hop, and an edit
    # made meanwhile (at load, seconds) was never seen, nor reloaded until the next one.
    folder = _named(path)
    reload_first = (catch_up if callable(catch_up) else on_change) if catch_up else None
    while True:
        moved = asyncio.Event()
        follower = asyncio.create_task(_follow(path, folder, moved, follow_seconds))
        # After a move, the reload runs once the watch below has begun (watchfiles sets it up
        # before its first await): an edit made in the new folder while that reload reads it
        # (a deploy still copying files into it) is seen, and reloaded in turn.
        first = None
        if reload_first is not None:
            first = asyncio.create_task(_changed(reload_first, loop, failures))
        pin = _pin(folder)
        try:
            if folder is not None:
                try:
                    async for names in _batches(folder.path, watched, moved):
                        log.info("files_changed", extra={"what": what, "files": names[:20]})
                        if first is not None:
                            await first  # one reload at a time (the events wait in watchfiles)
                        await _changed(on_change, loop, failures)
                except OSError:  # the folder went between the look and the watch: counted
                    failures.failed(loop)
            await follower  # ends once `path` names another folder (the watch's stop_event)
            if first is not None:
                await first
        finally:
            follower.cancel()
            if first is not None:
                first.cancel()  # done by now, unless this task is being cancelled
            if pin is not None:
                os.close(pin)
        log.info("files_changed", extra={"what": what, "files": [path.name]})
        folder, reload_first = await asyncio.to_thread(_named, path), on_change


def _pin(folder: _Folder | None) -> int | None:
    """A descriptor of the watched folder, held while it is watched: (device, inode) names a
    folder only while its inode cannot be given to another. Unheld, a folder deleted and made
    again (`rm -rf policies && mkdir policies`, then the files) took the deleted one's inode
    number on ext4, so it looked like the folder watched, and the watch, gone with the deleted
    folder, never saw the files copied in (red team session 18). None when it is gone already
    (the follower sees that)."""
    if folder is None:
        return None
    try:
        return os.open(folder.path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None


async def _batches(
    folder: str, watched: Callable[[watchfiles.Change, str], bool], moved: asyncio.Event
) -> AsyncIterator[list[str]]:
    """The names in each batch of changes under `folder`, until `moved` is set. The watch is
    set up in the first step (RustNotify's constructor, before any await).

    Raises: OSError (FileNotFoundError when `folder` is gone)."""
    async for changes in watchfiles.awatch(
        folder, watch_filter=watched, debounce=300, step=50, recursive=True, stop_event=moved
    ):
        yield sorted({Path(p).name for _, p in changes})


async def _follow(
    path: Path, folder: _Folder | None, moved: asyncio.Event, interval: float
) -> None:
    """Set `moved` once `path` names another folder than `folder` (or none, or one again)."""
    while True:
        await asyncio.sleep(interval)
        if await asyncio.to_thread(_named, path) != folder:
            moved.set()
            return


async def _changed(on_change: Callable[[], object], loop: Loop, failures: LoopFailures) -> None:
    try:
        result = on_change()
        if inspect.isawaitable(result):
            await result
    except Exception:  # a background loop: log, count and go on
        failures.failed(loop)


def _watch_filter(ignore: Callable[[str], bool] | None) -> Callable[[watchfiles.Change, str], bool]:
    default = watchfiles.DefaultFilter()
    if ignore is None:
        return default
    return lambda change, path: default(change, path) and not ignore(Path(path).name)


class PolledFile:
    """Whether a small file's bytes changed since the last look. Read, not stat'ed: a change
    another host wrote to a shared volume (NFS) raises no file event here, and an open
    revalidates the client's cached copy where a stat may answer from its attribute cache."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._seen = self._read()

    def changed(self) -> bool:
        """Blocking I/O (a hung NFS server blocks it): call it in a thread."""
        current = self._read()
        if current == self._seen:
            return False
        self._seen = current
        return True

    def _read(self) -> bytes | None:
        try:
            return self._path.read_bytes()
        except OSError:
            return None


async def poll_file(
    watched: PolledFile,
    on_change: Callable[[], Awaitable[object]],
    interval: float,
    what: str,
    failures: LoopFailures,
) -> None:
    """Run until cancelled: every `interval` seconds, `await on_change()` if `watched` changed."""

    async def refresh_if_changed() -> None:
        if await asyncio.to_thread(watched.changed):
            await on_change()

    await poll_forever(refresh_if_changed, interval, what, failures)


async def poll_forever(
    refresh: Callable[[], Awaitable[object]], interval: float, what: str, failures: LoopFailures
) -> None:
    """Run until cancelled: `await refresh()` every `interval` seconds (KMS has no files)."""
    await failures.repeat(reload_loop(what), refresh, lambda: interval, wait_first=True)


async def retry_with_backoff(
    refresh: Callable[[], Awaitable[bool]],
    failing: Callable[[], object],
    what: str,
    failures: LoopFailures,
    *,
    first_seconds: float = 1.0,
    max_seconds: float = 60.0,
) -> None:
    """Run until cancelled: while `failing()`, `await refresh()` again after 1, 2, 4 … s (capped).

    A reload that failed is retried even when no file changes again (a fixed permission, KMS
    back): the service must not sit not-ready, or signing with stale keys, waiting for an event.
    """
    backoff, missed, loop = Backoff(first_seconds, max_seconds), 0, reload_loop(what)
    while True:
        await asyncio.sleep(backoff.ceiling(missed))
        if not failing():
            missed = 0
            continue
        try:
            ok = await refresh()
        except Exception:  # a background loop: log, count and go on
            failures.failed(loop)
            ok = False
        missed = 0 if ok else missed + 1
        delay = backoff.ceiling(missed)
        if not ok:
            log.warning("reload_retry_scheduled", extra={"what": what, "in_seconds": delay})
