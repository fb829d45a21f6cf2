"""Folding an exited process's prometheus multiprocess files (metricsdir.py): what the
supervisor does each time a worker exits, so nothing in a file may end the supervisor."""

from pathlib import Path

from prometheus_client.mmap_dict import MmapedDict
from sekisho.metricsdir import retire_process_files


def _counter_file(directory: Path, pid: int, value: float) -> None:
    values = MmapedDict(str(directory / f"counter_{pid}.db"))
    values.write_value("sekisho_test_total", value, 0.0)
    values.close()


def _archived(directory: Path) -> list[tuple[str, float]]:
    values = MmapedDict.read_all_values_from_file(str(directory / "counter_archive.db"))
    return [(key, value) for key, value, _timestamp, _ in values]


def test_exited_processes_counts_are_folded_into_the_archive(tmp_path: Path) -> None:
    _counter_file(tmp_path, 101, 2.0)
    _counter_file(tmp_path, 102, 3.0)
    retire_process_files(str(tmp_path), 101)
    retire_process_files(str(tmp_path), 102)
    assert _archived(tmp_path) == [("sekisho_test_total", 5.0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_archive.db"]


def test_a_file_stopped_before_it_was_sized_is_removed_not_read(tmp_path: Path) -> None:
    """A worker stopped between creating its file and sizing it leaves it empty: reading its
    header raised struct.error in the supervisor, which then exited 1 (seen as a flaky
    test_a_worker_that_cannot_start_stops_the_pod_with_its_error)."""
    _counter_file(tmp_path, 101, 2.0)
    retire_process_files(str(tmp_path), 101)
    (tmp_path / "counter_102.db").touch()
    (tmp_path / "histogram_102.db").write_bytes(b"\x00\x00")
    retire_process_files(str(tmp_path), 102)
    assert _archived(tmp_path) == [("sekisho_test_total", 2.0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_archive.db"]
