"""The Prometheus multiprocess folder of a multi-worker pod: bounded, whatever the workers do.

prometheus-client keeps one file per metric type per process (`counter_<pid>.db`, …) and never
deletes them, so a crash-looping worker adds files (each preallocated to 1 MiB) until the
metrics volume fills. When a worker exits, the supervisor folds its counters, histograms and
summaries into one `<type>_archive.db` per type (so the pod's totals do not go backwards), drops
its gauges (a dead process's gauge means nothing) and deletes its files. The folder itself is
removed when the supervisor exits (workers.py).
"""

import contextlib
import glob
import os

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import mark_process_dead

_ACCUMULATED = ("counter", "histogram", "summary")
_HEADER_BYTES = 8  # a value file starts with its used length (4 bytes) and 4 of padding


def retire_process_files(directory: str, pid: int) -> None:
    """Fold the files of exited process `pid` into the archives and delete them."""
    mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
    for path in glob.glob(os.path.join(directory, f"*_{pid}.db")):
        kind = os.path.basename(path).split("_", 1)[0]
        if kind in _ACCUMULATED and os.path.getsize(path) >= _HEADER_BYTES:
            _fold(path, os.path.join(directory, f"{kind}_archive.db"))
        # Shorter: the process was stopped between creating its file and sizing it (MmapedDict
        # opens, then truncates to its initial size), so it recorded nothing; reading the header
        # would raise struct.error and end the supervisor (a flaky exit 1 instead of 3 when a
        # worker that failed to start made the supervisor stop its sibling mid-creation).
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _fold(source: str, archive_path: str) -> None:
    values = MmapedDict.read_all_values_from_file(source)  # type: ignore[no-untyped-call]
    archive = MmapedDict(archive_path)  # type: ignore[no-untyped-call]
    try:
        for key, value, timestamp, _ in values:
            current, _ = archive.read_value(key)  # type: ignore[no-untyped-call]
            archive.write_value(key, current + value, timestamp)  # type: ignore[no-untyped-call]
    finally:
        archive.close()  # type: ignore[no-untyped-call]
