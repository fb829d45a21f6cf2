"""An append-only JSON-lines file with size-based rotation: `path` → `path.1` → … →
`path.<max_files>`, the oldest deleted. Created owner-only (0600, folder 0700): it holds
personal data. Used by one thread at a time (the decision log's writer)."""

import os
from pathlib import Path
from typing import BinaryIO


class RotatingFile:
    """Appends lines; starts a new file before a line would take the current past max_bytes."""

    def __init__(self, path: Path, *, max_bytes: int, max_files: int) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._max_files = max_files
        self._file: BinaryIO | None = None
        self._size = 0

    @property
    def path(self) -> Path:
        return self._path

    def write(self, line: bytes) -> None:
        """Append one line (the newline is added). Raises: OSError."""
        if self._file is None:
            self._open()
        if self._size and self._size + len(line) + 1 > self._max_bytes:
            self._rotate()
        assert self._file is not None
        self._file.write(line + b"\n")
        self._size += len(line) + 1

    def flush(self) -> None:
        """Raises: OSError."""
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        """Raises: OSError."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _open(self) -> None:
        self._path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "ab")
        self._size = os.fstat(fd).st_size

    def _rotate(self) -> None:
        self.close()
        for index in range(self._max_files - 1, 0, -1):
            older = self._numbered(index)
            if older.exists():
                older.replace(self._numbered(index + 1))
        self._path.replace(self._numbered(1))
        self._open()

    def _numbered(self, index: int) -> Path:
        return self._path.with_name(f"{self._path.name}.{index}")
