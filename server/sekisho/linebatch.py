"""The audit lines of one event-loop iteration, written with one write (logs.LineHandler).

Each exchange writes one audit line; written one by one, each is a `write` system call (and a
trip through the text and buffered layers of stderr). An exchange running on the event loop hands
its line to a `LineBatch` instead; the first line of a batch asks the loop to write the batch
(`call_soon`: once the callbacks ready in this iteration have run, never a timer), so the lines
of the exchanges that finish in one iteration share one write
(bench/results/audit_session15.md).

What stays as it was:
- every line is written, in the order the lines were made: any other line the handler writes
  (a LogRecord, a line from another thread, a line with no running loop) first writes the batch;
  so do `flush`, `close` and a change of stream (logging.shutdown at exit runs them);
- several workers share stderr, and a line must never be torn by another's: a batch is written
  with one `write` of at most PIPE_BUF bytes (POSIX: a pipe write that size is atomic; a file is
  written whole), whole lines only; a line that would take a batch past PIPE_BUF writes the batch
  first, and a longer line (or one that is not ASCII: its bytes are more than its characters) is
  written alone, as every line was before;
- a forked child never writes the lines its parent had batched (the parent does).

What changes: a line is written at the end of the loop iteration that made it rather than at
once. A process killed hard (SIGKILL, a crash of the interpreter) in between loses the lines of
that iteration; SIGTERM and every orderly exit write them (docs/operators.md#logs).
"""

import asyncio
import os
import select
import threading
from collections.abc import Callable

PIPE_BUF = select.PIPE_BUF  # 4,096 on Linux


class LineBatch:
    """Lines waiting for the end of the loop iteration; `write_text` writes text at once. Every
    method is called under `lock` (the handler's), which `_write_on_loop` takes itself."""

    def __init__(self, write_text: Callable[[str], None], lock: threading.RLock) -> None:
        self._write_text = write_text
        self._lock = lock
        self._lines: list[str] = []
        self._size = 0  # characters (= bytes: only ASCII lines are batched)
        self._pid = 0  # the process that batched them
        self._scheduled: asyncio.AbstractEventLoop | None = None  # loop that will write them

    def add(self, text: str) -> None:
        """Batch `text` (whole lines) on the running loop, or write it at once (see above)."""
        loop = asyncio._get_running_loop()  # the C getter: None off the loop, never raises
        if loop is None or len(text) > PIPE_BUF or not text.isascii():
            self.write()
            self._write_text(text)
            return
        if self._size + len(text) > PIPE_BUF:
            self.write()
        if not self._lines:
            self._pid = os.getpid()
        self._lines.append(text)
        self._size += len(text)
        if self._scheduled is not loop:  # none yet, or on a loop that has since ended
            loop.call_soon(self._write_on_loop)
            self._scheduled = loop

    def write(self) -> None:
        """Write the batched lines now, with one write (nothing when there are none)."""
        lines, self._lines, self._size = self._lines, [], 0
        if lines and self._pid == os.getpid():  # else the parent's lines, copied by a fork
            self._write_text("".join(lines))

    def _write_on_loop(self) -> None:
        with self._lock:
            self._scheduled = None
            self.write()
