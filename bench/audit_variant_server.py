"""`sekisho serve --config FILE` (BENCH_SRV hook of bench/stack.py) with the audit line's write
path swapped for a diagnostic variant, for bench/audit_interleaved.py. The variant is named by
$AUDIT_VARIANT; every variant but `line` changes only what LineHandler does with the line:

- `line`: unchanged (today's path: format, then TextIOWrapper write + flush, one write(2)).
- `nowrite`: the line is formatted (stamps, scrubber, JSON) but not written.
- `prebuilt`: no formatting; a fixed line of today's length written and flushed as today.
- `oswrite`: formatted, then one `os.write(2, bytes)` (releases the GIL, as FileIO does), no
  TextIOWrapper/BufferedWriter.
- `gilwrite`: formatted, then libc write(2) through ctypes.PyDLL (the GIL held across the
  syscall: no other thread can take it while the loop thread is in the kernel).
- `batch`: formatted, kept in a list; the first line of a loop iteration schedules one
  `loop.call_soon` that writes them all with one os.write at the end of the iteration (the
  experiment before linebatch.py: no PIPE_BUF bound).
- `nobatch`: with the LineBatch experiment checked out (the commit "experiment (reverted
  next)" of session 15: linebatch.py), each line written at once instead of batched: what the
  batch saved (nothing measurable: bench/results/audit_session15.md).
"""

import asyncio
import ctypes
import os
import sys

from sekisho import logs
from sekisho.cli import main

VARIANT = os.environ.get("AUDIT_VARIANT", "line")
_LINE = ("x" * 1023 + "\n").encode()  # about today's token_exchanged line


class _NoWrite:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


class _OsWrite:
    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, text: str) -> int:
        return os.write(self._fd, text.encode())

    def flush(self) -> None:
        pass


class _GilWrite:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._write = ctypes.PyDLL(None).write  # PyDLL: the GIL is not released
        self._write.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
        self._write.restype = ctypes.c_ssize_t

    def write(self, text: str) -> int:
        data = text.encode()
        return int(self._write(self._fd, data, len(data)))

    def flush(self) -> None:
        pass


class _Batch:
    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pending: list[str] = []

    def write(self, text: str) -> int:
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self._drain)
            except RuntimeError:  # no loop (start-up, shutdown): at once
                os.write(self._fd, text.encode())
                return len(text)
        self._pending.append(text)
        return len(text)

    def _drain(self) -> None:
        data, self._pending = "".join(self._pending).encode(), []
        os.write(self._fd, data)

    def flush(self) -> None:
        pass


_STREAMS = {"nowrite": _NoWrite, "oswrite": _OsWrite, "gilwrite": _GilWrite, "batch": _Batch}
_original_init = logs.LineHandler.__init__
_original_write_event = logs.LineHandler.write_event


def _init(self: logs.LineHandler, stream, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    make = _STREAMS.get(VARIANT)
    _original_init(self, make(stream.fileno()) if make else stream, *args, **kwargs)


def _prebuilt(self: logs.LineHandler, logger: str, level: int, event: str, fields) -> bool:  # type: ignore[no-untyped-def]
    with self.lock:  # type: ignore[union-attr]
        self.stream.buffer.write(_LINE)
        self.stream.flush()
    return True


def _at_once(self, text: str) -> None:  # type: ignore[no-untyped-def]
    self.write()
    self._write_text(text)


if VARIANT == "nobatch":
    from sekisho import linebatch  # type: ignore[attr-defined]  # the experiment's checkout only

    linebatch.LineBatch.add = _at_once  # type: ignore[method-assign]
logs.LineHandler.__init__ = _init  # type: ignore[method-assign]
if VARIANT == "prebuilt":
    logs.LineHandler.write_event = _prebuilt  # type: ignore[method-assign]
sys.exit(main(["serve", "--config", sys.argv[1]]))
