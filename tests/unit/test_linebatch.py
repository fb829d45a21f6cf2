"""The audit lines an event-loop iteration makes are written together at its end (linebatch.py):
every line, in order, before any other line; each write whole lines of at most PIPE_BUF bytes,
so workers sharing stderr never tear each other's lines; written on flush, close and exit; never
twice after a fork."""

import asyncio
import io
import json
import logging
import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sekisho.linebatch import PIPE_BUF
from sekisho.logs import JsonLineFormatter, LineHandler
from sekisho.redaction import ScrubFilter

from tests.security.test_audit_line import CountingStream


class WriteLog(CountingStream):
    """Records the text of each write."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def write(self, text: str) -> int:
        self.texts.append(text)
        return super().write(text)


def _handler(stream: io.StringIO) -> LineHandler:
    handler = LineHandler(stream)
    handler.setFormatter(JsonLineFormatter())
    handler.addFilter(ScrubFilter(frozenset()))
    return handler


def _event(handler: LineHandler, serial: int, size: int = 0) -> None:
    fields: dict[str, Any] = {"serial": serial, "pad": "x" * size}
    assert handler.write_event("sekisho.audit", logging.INFO, "token_exchanged", fields)


def _serials(text: str) -> list[int]:
    return [json.loads(line)["serial"] for line in text.splitlines()]


def test_lines_of_one_loop_iteration_are_one_write_at_its_end() -> None:
    out = WriteLog()
    handler = _handler(out)

    async def exchanges() -> list[str]:
        for serial in range(3):
            _event(handler, serial)
        written_before = list(out.texts)
        await asyncio.sleep(0)  # the iteration ends: the batch is written
        return written_before

    assert asyncio.run(exchanges()) == []  # nothing during the iteration
    assert len(out.texts) == 1  # one write for the three lines
    assert _serials(out.getvalue()) == [0, 1, 2]


def test_off_the_loop_each_line_is_written_at_once() -> None:
    out = WriteLog()
    handler = _handler(out)
    _event(handler, 0)
    assert (out.writes, out.flushes) == (1, 1)


def test_any_other_line_writes_the_batch_first() -> None:
    out = WriteLog()
    handler = _handler(out)
    record = logging.makeLogRecord({"name": "sekisho.x", "msg": "other", "levelno": logging.INFO})

    async def mixed() -> None:
        _event(handler, 0)
        handler.handle(record)  # a LogRecord, as log.info would hand it
        _event(handler, 1)
        await asyncio.to_thread(_event, handler, 2)  # another thread: no loop, at once
        await asyncio.sleep(0)

    asyncio.run(mixed())
    events = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert events == ["token_exchanged", "other", "token_exchanged", "token_exchanged"]
    assert [json.loads(line).get("serial") for line in out.getvalue().splitlines()] == [
        0, None, 1, 2,
    ]  # fmt: skip


@pytest.mark.parametrize("size", [100, 1000, PIPE_BUF // 2, PIPE_BUF - 200, PIPE_BUF + 10])
def test_each_write_is_whole_lines_within_pipe_buf_or_one_line(size: int) -> None:
    out = WriteLog()
    handler = _handler(out)

    async def many() -> None:
        for serial in range(40):
            _event(handler, serial, size)
        await asyncio.sleep(0)

    asyncio.run(many())
    assert _serials(out.getvalue()) == list(range(40))
    for text in out.texts:
        assert text.endswith("\n")
        assert len(text.encode()) <= PIPE_BUF or text.count("\n") == 1
    if size <= 1000:
        assert len(out.texts) < 40  # batched


def test_flush_and_close_write_the_batch() -> None:
    out = WriteLog()
    handler = _handler(out)

    async def then_flush() -> None:
        _event(handler, 0)
        handler.flush()  # what logging.shutdown and a worker's exit do
        assert _serials(out.getvalue()) == [0]
        _event(handler, 1)
        handler.close()
        assert _serials(out.getvalue()) == [0, 1]

    asyncio.run(then_flush())


def test_the_batch_is_written_at_exit_when_the_loop_never_ran_again() -> None:
    # The loop ends in the iteration that made the line (asyncio.run returns, the process exits):
    # logging.shutdown at exit writes it.
    script = textwrap.dedent(
        """
        import asyncio, contextvars, logging, sys
        from sekisho.logs import configure_logging
        configure_logging("INFO", "json", contextvars.ContextVar("r", default=""))
        handler = logging.getLogger().handlers[0]
        loop = asyncio.new_event_loop()
        async def one():
            handler.write_event("sekisho.audit", logging.INFO, "token_exchanged", {"n": 1})
        loop.run_until_complete(one())  # stops before the write's callback runs
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),
    )  # fmt: skip
    (line,) = done.stderr.splitlines()
    assert json.loads(line)["n"] == 1


def _child_flushes(handler: LineHandler) -> None:
    handler.flush()
    os._exit(0)


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_never_writes_its_parents_batch(tmp_path: Path) -> None:
    log = tmp_path / "log"
    with log.open("a", buffering=1) as stream:  # one file, shared with the child by the fork
        handler = _handler(stream)

        async def fork_between() -> None:
            _event(handler, 0)
            context = multiprocessing.get_context("fork")
            child = context.Process(target=_child_flushes, args=(handler,))
            child.start()
            child.join(timeout=30)
            await asyncio.sleep(0)

        asyncio.run(fork_between())
    assert _serials(log.read_text()) == [0]  # once: the parent's, not the child's copy too


def _worker(fd: int, worker: int, lines: int) -> None:
    stream = os.fdopen(fd, "w", buffering=1)  # what stderr is: line buffered, one fd per process
    handler = _handler(stream)

    async def exchanges() -> None:
        for serial in range(lines):
            fields = {"worker": worker, "serial": serial, "pad": "y" * (600 + serial % 500)}
            handler.write_event("sekisho.audit", logging.INFO, "token_exchanged", fields)
            if serial % 7 == 6:
                await asyncio.sleep(0)
        await asyncio.sleep(0)

    asyncio.run(exchanges())
    handler.flush()
    os._exit(0)


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_workers_sharing_a_pipe_never_tear_each_others_lines() -> None:
    read, write = os.pipe()
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_worker, args=(write, n, 300)) for n in range(4)]
    for worker in workers:
        worker.start()
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    for worker in workers:
        worker.join(timeout=60)
    seen: dict[int, list[int]] = {n: [] for n in range(4)}
    for line in text.splitlines():
        fields = json.loads(line)  # a torn line would not parse
        seen[fields["worker"]].append(fields["serial"])
    assert all(serials == list(range(300)) for serials in seen.values())
