"""Structured logging: one line per record on stderr (JSON, or key=value text), event name as
the message, every field scrubbed of credentials and bounded (redaction.py)."""

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import Any

from sekisho.redaction import ScrubFilter

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event, then every `extra` field.

    Written for the hot path (the audit line of every exchange): it builds one dict and calls
    json.dumps once, and formats the timestamp once per second. Measured in
    bench/results/observability_cost.md against python-json-logger's JsonFormatter.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""
        # What json.dumps(line, default=str) builds on every call, built once.
        self._encode = json.JSONEncoder(default=str).encode

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        return f"{self._second_text},{int((created - second) * 1000):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return self._encode(line)


class TextLineFormatter(logging.Formatter):
    """`logging.format = "text"`: one line, `time level logger event key=value …`.

    The same fields as the JSON line (the audit record in full: decision id, sub hash, audience,
    scopes, kid, jti, reason; an error's detail), each value a bare word or a JSON string, so a
    newline or quote in a value is escaped and can never forge a second line or field.
    """

    def format(self, record: logging.LogRecord) -> str:
        created = self.formatTime(record)
        parts = [created, record.levelname, record.name, _text_value(record.getMessage())]
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                parts.append(f"{key}={_text_value(value)}")
        if record.exc_info:
            text = record.exc_text or self.formatException(record.exc_info)
            parts.append(f"exc_info={_text_value(text)}")
        return " ".join(parts)


_BARE = re.compile(r"[A-Za-z0-9._:/@+,-]+")


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value if _BARE.fullmatch(value) else json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request id of the RPC being served (if any)."""

    def __init__(self, request_id: contextvars.ContextVar[str]) -> None:
        super().__init__()
        self._request_id = request_id

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = self._request_id.get("")
        if request_id:
            record.request_id = request_id
        return True


class WorkerFilter(logging.Filter):
    """Stamps each record with the worker number and pid (server.workers > 1), so the lines of
    several processes interleaved on one stderr can be told apart."""

    def __init__(self, worker: int) -> None:
        super().__init__()
        self._worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self._worker
        record.pid = os.getpid()
        return True


def configure_logging(
    level: str, fmt: str, request_id: contextvars.ContextVar[str], worker: int | None = None
) -> None:
    """Route every logger to stderr as JSON (or plain text for local reading).

    `worker` (a worker process's number) adds `worker` and `pid` to every line.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextLineFormatter())
    handler.addFilter(RequestIdFilter(request_id))
    if worker is not None:
        handler.addFilter(WorkerFilter(worker))
    handler.addFilter(ScrubFilter(_STANDARD_ATTRIBUTES))  # last: sees every field
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Neither format prints the caller's file/line, thread or process name: skip collecting them
    # (the logging HOWTO's "Optimization" section; the stack walk alone costs ~10 µs per line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # watchfiles reports every change batch at INFO; Sekisho logs its own `files_changed` event.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
