"""reload.watch_directory following a symlinked folder (`[policy] path` as git-sync's `current ->
releases/N`): every repoint must end in a reload of the folder the path names now, and the watch
must outlive a moment when the path names nothing (red team session 17)."""

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import watchfiles
from sekisho.reload import watch_directory

from tests.fakes.loops import RecordedFailures

FOLLOW = 0.05  # seconds between resolutions of the path (FOLLOW_SECONDS is 1 s)
HANG_GUARD = 30.0  # seconds: a bound on waiting, not an assertion about time


def _point(link: Path, target: Path) -> None:
    """Repoint `link` in one rename, as git-sync and `ln -sfn`-style deploys do."""
    fresh = link.with_name(link.name + ".new")
    fresh.symlink_to(target)
    fresh.replace(link)


def _release(root: Path, name: str) -> Path:
    folder = root / "releases" / name
    folder.mkdir(parents=True)
    (folder / "data.json").write_text("{}")
    return folder


class Reloads:
    """An on_change that records the folder the path named when each reload read it."""

    def __init__(self, link: Path) -> None:
        self._link = link
        self.read: list[str] = []
        self.changed = asyncio.Condition()
        self.during: Callable[[], object] | None = None  # run inside the next reload

    async def __call__(self) -> None:
        self.read.append(os.path.realpath(self._link))  # noqa: ASYNC240 (a test double)
        during, self.during = self.during, None
        if during is not None:
            during()
        async with self.changed:
            self.changed.notify_all()

    async def until_read(self, folder: Path) -> None:
        """Wait until a reload has read `folder`."""
        async with asyncio.timeout(HANG_GUARD), self.changed:
            await self.changed.wait_for(lambda: str(folder) in self.read)


async def _repoint_still_followed(
    task: asyncio.Task[None], link: Path, target: Path, reloads: Reloads
) -> None:
    """The watch outlived what came before (several follow periods later it still runs), and a
    repoint to `target` is reloaded."""
    await asyncio.sleep(5 * FOLLOW)
    assert not task.done(), task.exception()
    _point(link, target)
    await reloads.until_read(target)


@contextlib.asynccontextmanager
async def watching(link: Path, reloads: Reloads) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(
        watch_directory(link, reloads, "policy", RecordedFailures(), follow_seconds=FOLLOW)
    )
    try:
        await asyncio.sleep(0.1)  # the watch has begun
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """tmp_path as realpath names it, so the folders a reload records compare as spelled."""
    return Path(os.path.realpath(tmp_path))


async def test_a_second_repoint_during_the_reload_of_the_first_is_reloaded(
    base: Path,
) -> None:
    """A reload runs opa build (seconds). The path was resolved again only after the reload
    that followed a repoint, so a second repoint during that reload (a release rolled back at
    once) became the folder watched without a reload: the first release's successor served,
    with no event left to correct it."""
    link = base / "current"
    link.symlink_to(_release(base, "v1"))
    v2, v3 = _release(base, "v2"), _release(base, "v3")
    reloads = Reloads(link)
    async with watching(link, reloads):
        reloads.during = lambda: _point(link, v3)  # after this reload read v2
        _point(link, v2)
        await reloads.until_read(v2)
        await reloads.until_read(v3)


async def test_a_symlinked_folder_missing_for_a_moment_is_still_followed(
    base: Path,
) -> None:
    """A deploy that removes the link before making the new one (`rm current && ln -s …`, a
    release deleted before its link is repointed): when the path named nothing as it was
    resolved again, watchfiles raised FileNotFoundError and the watch task ended, silently:
    no later edit or repoint was reloaded until restart."""
    link = base / "current"
    link.symlink_to(_release(base, "v1"))
    v2 = _release(base, "v2")
    reloads = Reloads(link)
    async with watching(link, reloads) as task:
        link.unlink()
        await reloads.until_read(link)  # the reload of a path that names nothing
        await asyncio.sleep(5 * FOLLOW)
        assert not task.done(), task.exception()
        link.symlink_to(v2)
        await reloads.until_read(v2)
        (v2 / "data.json").write_text('{"edited": true}')
        count = len(reloads.read)
        async with asyncio.timeout(HANG_GUARD), reloads.changed:
            await reloads.changed.wait_for(lambda: len(reloads.read) > count)


async def test_a_folder_replaced_by_another_in_one_rename_is_reloaded(base: Path) -> None:
    """The same deploy without a symlink: the new folder built beside the old and renamed over
    it (`mv policies policies.old && mv policies.new policies`). inotify follows the folder it
    watches, now policies.old: the path's string resolved as before, so nothing was reloaded
    and no edit of the new folder was ever seen."""
    folder = base / "policies"
    folder.mkdir()
    reloads = Reloads(folder)
    async with watching(folder, reloads):
        fresh = base / "policies.new"
        fresh.mkdir()
        (fresh / "data.json").write_text('{"release": 2}')
        folder.rename(base / "policies.old")
        fresh.rename(folder)
        await reloads.until_read(folder)
        count = len(reloads.read)
        (folder / "data.json").write_text('{"release": 2, "edited": true}')
        async with asyncio.timeout(HANG_GUARD), reloads.changed:
            await reloads.changed.wait_for(lambda: len(reloads.read) > count)


async def test_a_folder_removed_during_the_reload_that_followed_its_repoint_is_followed(
    base: Path,
) -> None:
    """The folder is looked at before its reload and watched after it (seconds of opa build):
    a release deleted in between (a bad release pulled at once) must not end the watch."""
    link = base / "current"
    link.symlink_to(_release(base, "v1"))
    v2, v3 = _release(base, "v2"), _release(base, "v3")
    reloads = Reloads(link)
    async with watching(link, reloads) as task:
        reloads.during = lambda: shutil.rmtree(v2)
        _point(link, v2)
        await reloads.until_read(v2)
        await _repoint_still_followed(task, link, v3, reloads)


async def test_an_edit_of_the_new_folder_during_the_reload_of_its_repoint_is_reloaded(
    base: Path,
) -> None:
    """The reload that follows a repoint reads the new folder; an edit made there before its
    watch began was never seen (a deploy still copying files into a folder the path already
    names: `rm -rf policies && cp -r build/policies .` with the data files copied last). The
    new folder is watched before that reload reads it."""
    link = base / "current"
    link.symlink_to(_release(base, "v1"))
    v2 = _release(base, "v2")
    reloads = Reloads(link)
    async with watching(link, reloads):
        reloads.during = lambda: (v2 / "registry.json").write_text('{"late": true}')
        _point(link, v2)
        await reloads.until_read(v2)
        count = reloads.read.count(str(v2))
        async with asyncio.timeout(HANG_GUARD), reloads.changed:
            await reloads.changed.wait_for(lambda: reloads.read.count(str(v2)) > count)


async def test_a_folder_gone_between_the_look_and_the_watch_is_followed(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path is looked at in a thread and watched on the loop after it: a release deleted
    in between made watchfiles raise FileNotFoundError, which ended the watch task."""
    link = base / "current"
    link.symlink_to(_release(base, "v1"))
    v2, v3 = _release(base, "v2"), _release(base, "v3")
    real_awatch = watchfiles.awatch

    def awatch_after_deleting_v2(*paths: str, **options: Any) -> Any:
        if paths == (str(v2),):
            shutil.rmtree(v2)
        return real_awatch(*paths, **options)

    monkeypatch.setattr(watchfiles, "awatch", awatch_after_deleting_v2)
    reloads = Reloads(link)
    async with watching(link, reloads) as task:
        _point(link, v2)
        await reloads.until_read(v2)
        await _repoint_still_followed(task, link, v3, reloads)


async def test_stopping_the_watch_stops_the_reload_that_followed_a_move(base: Path) -> None:
    """The reload after a move runs as its own task: a watch cancelled (shutdown) during it
    cancels it too, rather than leaving it to run against a closing engine."""
    link = base / "current"
    link.symlink_to(_release(base, "v1"))
    v2 = _release(base, "v2")
    started, stopped = asyncio.Event(), asyncio.Event()

    async def endless_reload() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(
        watch_directory(link, endless_reload, "policy", RecordedFailures(), follow_seconds=FOLLOW)
    )
    await asyncio.sleep(0.1)
    _point(link, v2)
    await asyncio.wait_for(started.wait(), HANG_GUARD)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.wait_for(stopped.wait(), HANG_GUARD)


async def test_a_catching_up_watch_reloads_once_it_has_begun(base: Path) -> None:
    """`catch_up`: the state was loaded before the watch began; a change in between (seconds
    of a service's start) raised no event the watch could see, so it reloads once, after its
    set-up, with no change of its own."""
    (base / "data.json").write_text("{}")
    reloads = Reloads(base)
    task = asyncio.create_task(
        watch_directory(base, reloads, "policy", RecordedFailures(), catch_up=True)
    )
    try:
        await reloads.until_read(base)
        assert reloads.read == [str(base)]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_folder_deleted_and_made_again_is_followed(base: Path) -> None:
    """`rm -rf policies && mkdir policies`, the files copied in after the reload that the
    deletion set off: ext4 gives the new folder the deleted one's inode number, so the follower
    took it for the folder watched, and the watch, gone with the deleted folder, never saw the
    files (red team session 18). Each reload records the file it read (None: none there)."""
    folder = base / "policies"
    folder.mkdir()
    (folder / "data.json").write_text('{"release": 1}')
    read: list[str | None] = []
    changed = asyncio.Condition()

    async def reload() -> None:
        data = folder / "data.json"
        read.append(data.read_text() if data.exists() else None)
        async with changed:
            changed.notify_all()

    async def until_read(text: str | None) -> None:
        async with asyncio.timeout(HANG_GUARD), changed:
            await changed.wait_for(lambda: text in read)

    task = asyncio.create_task(
        watch_directory(folder, reload, "policy", RecordedFailures(), follow_seconds=FOLLOW)
    )
    try:
        await asyncio.sleep(0.1)  # the watch has begun
        shutil.rmtree(folder)
        folder.mkdir()
        await until_read(None)  # the deletion's reload: an empty folder
        (folder / "data.json").write_text('{"release": 2}')
        await until_read('{"release": 2}')
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
