"""Structured logging: one line per record on stderr (JSON, or key=value text), event name as
the message, every field scrubbed of credentials and bounded (redaction.py).

Two ways to the same line. Any record goes the stdlib way (Logger → LogRecord → the handler's
filters → formatter → write). The audit line, written once per exchange, may instead hand its
fields straight to the handler `configure_logging` installed (`LineHandler.write_event`): the
same stamps, the same scrubber, the same formatter, the same one flushed write, without a
LogRecord — but only when that handler is the one thing a record of the logger would reach
(`direct_handler`); with any other handler or filter on the way (pytest's caplog, an
application's own handler) the event is logged the stdlib way.
"""

import contextvars
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from sekisho.jsonfields import FieldEncoder
from sekisho.jsontext import json_encoder
from sekisho.redaction import ScrubFilter, scrub_text

# Attributes every LogRecord has; anything else on a record came from `extra=` or a filter.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)

_HEAD = frozenset({"time", "level", "logger", "event"})  # a field of that name replaces it
_MAX_HEADS = 256
_MAX_FRESH_SETS = 256  # LineHandler._fresh_with_stamps: a few per event kind and stamps


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
        # json.dumps(line, default=str), built once (jsontext.py): every value was rebuilt by
        # the scrubber (redaction.scrub), so none can contain itself.
        self._encode = json_encoder(separators=(", ", ": "), default=str)

        # What format_event reuses: the JSON text of field names and short strings, and of
        # `"level": …, "logger": …, "event": …` per event (jsonfields.py).
        self._fields = FieldEncoder(self._encode)
        self._heads: dict[tuple[str, str, str], str] = {}

    def _time(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._second = second
        return f"{self._second_text},{int((created - second) * 1000):03d}"

    def format(self, record: logging.LogRecord) -> str:
        line = self._head(record.created, record.levelname, record.name, record.getMessage())
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRIBUTES:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return self._encode(line)

    def format_event(
        self,
        created: float,
        level: str,
        logger: str,
        event: str,
        fields: dict[str, Any],
        *,
        scrubber: ScrubFilter,
        fresh: frozenset[str] = frozenset(),
    ) -> str:
        """The line `format` writes for a record of these attributes and extra `fields` once
        `scrubber` has filtered it (`event` already scrubbed; `fields` may be changed). `fresh`:
        the fields whose values change from line to line, when the others mostly repeat
        (jsonfields.FieldEncoder.items_of_line: the same text, made from larger pieces)."""
        if not fields.keys() & _HEAD:
            head = self._heads.get((level, logger, event))
            if head is None:
                head = self._head_text(level, logger, event)
            if fresh:
                items = self._fields.items_of_line(fields, scrubber, fresh)
            else:
                items = self._fields.items(fields, scrubber)
            if items is not None:  # the time text needs no escape: digits, "-", ":", ",", " "
                return f'{{"time": "{self._time(created)}", {head}{items}}}'
        scrubber.scrub_fields(fields)
        line = self._head(created, level, logger, event)
        line.update(fields)
        return self._encode(line)

    def _head_text(self, level: str, logger: str, event: str) -> str:
        if len(self._heads) >= _MAX_HEADS:
            self._heads.clear()
        head = self._encode({"level": level, "logger": logger, "event": event})[1:-1]
        self._heads[(level, logger, event)] = head
        return head

    def _head(self, created: float, level: str, logger: str, event: str) -> dict[str, Any]:
        return {"time": self._time(created), "level": level, "logger": logger, "event": event}


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

    def format_event(
        self,
        created: float,
        level: str,
        logger: str,
        event: str,
        fields: dict[str, Any],
        *,
        scrubber: ScrubFilter,
        fresh: frozenset[str] = frozenset(),
    ) -> str:
        """The line `format` writes for a record of these attributes and extra `fields` once
        `scrubber` has filtered it (`event` already scrubbed; `fields` may be changed; `fresh`
        changes nothing here)."""
        scrubber.scrub_fields(fields)
        record = logging.LogRecord(logger, logging.INFO, "", 0, event, None, None)
        record.created, record.levelname = created, level
        record.msecs = int((created - int(created)) * 1000)
        record.__dict__.update(fields)
        return self.format(record)


_BARE = re.compile(r"[A-Za-z0-9._:/@+,-]+")


def _text_value(value: Any) -> str:
    if isinstance(value, str):
        return value if _BARE.fullmatch(value) else json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))


class RequestIdFilter(logging.Filter):
    """Stamps each record with the request id of the RPC being served (if any)."""

    FRESH = frozenset({"request_id"})  # what changes from one line to the next

    def __init__(self, request_id: contextvars.ContextVar[str]) -> None:
        super().__init__()
        self._request_id = request_id

    def filter(self, record: logging.LogRecord) -> bool:
        self.stamp(record.__dict__)
        return True

    def stamp(self, fields: dict[str, Any]) -> None:
        """What `filter` does to a record's attributes, done to a record's extra fields."""
        request_id = self._request_id.get("")
        if request_id:
            fields["request_id"] = request_id


class WorkerFilter(logging.Filter):
    """Stamps each record with the worker number and pid (server.workers > 1), so the lines of
    several processes interleaved on one stderr can be told apart."""

    # Numbers: never part of a remembered line text (jsonfields._keepable), so fresh.
    FRESH = frozenset({"worker", "pid"})

    def __init__(self, worker: int) -> None:
        super().__init__()
        self._worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        self.stamp(record.__dict__)
        return True

    def stamp(self, fields: dict[str, Any]) -> None:
        """What `filter` does to a record's attributes, done to a record's extra fields."""
        fields["worker"] = self._worker
        fields["pid"] = os.getpid()


_STAMPS = (RequestIdFilter, WorkerFilter)


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure_logging` installs: one formatted line per record, written and
    flushed at once (a crash loses no line already logged). `write_event` writes the line of an
    event without a LogRecord."""

    def __init__(self, stream: TextIO, wall_time: Callable[[], float] = time.time) -> None:
        super().__init__(stream)
        self._wall_time = wall_time  # what LogRecord.created reads
        self._fresh: dict[tuple[Any, ...], frozenset[str]] = {}  # _fresh_with_stamps

    def _fresh_with_stamps(self, fresh: frozenset[str], stamps: list[Any]) -> frozenset[str]:
        """`fresh` and the fields the stamps (each one of _STAMPS) add, the same object line
        after line."""
        key = (fresh, *map(type, stamps))
        known = self._fresh.get(key)
        if known is None:
            if len(self._fresh) >= _MAX_FRESH_SETS:
                self._fresh.clear()
            known = self._fresh[key] = fresh.union(*(s.FRESH for s in stamps))
        return known

    def write_event(
        self,
        logger: str,
        level: int,
        event: str,
        fields: dict[str, Any],
        fresh: frozenset[str] = frozenset(),
    ) -> bool:
        """Write the line `handle` would write for a record of `logger` at `level` with message
        `event` and `extra=fields`: the same stamps and scrubbing, the same formatter, one
        flushed write (`fields` may be changed; `fresh`: JsonLineFormatter.format_event's).
        False, having written and changed nothing, unless the filters are stamps then one
        ScrubFilter (as `configure_logging` installs them) and the formatter is one of this
        module's (log the record instead)."""
        formatter, filters = self.formatter, self.filters
        if not isinstance(formatter, (JsonLineFormatter, TextLineFormatter)):
            return False
        scrubber = filters[-1] if filters else None
        # Not a subclass either: it may scrub otherwise than scrub_field (the record path runs
        # its filter()).
        if not isinstance(scrubber, ScrubFilter) or type(scrubber) is not ScrubFilter:
            return False
        stamps = filters[:-1]
        for each in stamps:
            if not isinstance(each, _STAMPS):
                return False
        for each in stamps:  # in their order, as Filterer.filter runs them; the scrubber last
            if isinstance(each, _STAMPS):
                each.stamp(fields)
        if fresh and stamps:
            fresh = self._fresh_with_stamps(fresh, stamps)
        event = scrub_text(event)
        name = logging.getLevelName(level)
        line = formatter.format_event(
            self._wall_time(), name, logger, event, fields, scrubber=scrubber, fresh=fresh
        )
        with self.lock:  # type: ignore[union-attr]  # as Handler.handle → StreamHandler.emit
            try:
                self.stream.write(line + self.terminator)
                self.stream.flush()
            except RecursionError:  # as StreamHandler.emit
                raise
            except Exception:
                record = logging.makeLogRecord({"name": logger, "msg": event, "levelno": level})
                self.handleError(record)
        return True


def direct_handler(logger: logging.Logger, level: int) -> LineHandler | None:
    """The LineHandler a record of `logger` at `level` would reach, if it is the only thing that
    would see the record (no other handler on the way to the root, no filter on `logger`): the
    record may then be written with `LineHandler.write_event`. None when any other handler or
    filter would see it, when no handler would, or when `level` is off for `logger`."""
    if logger.filters or not logger.isEnabledFor(level):
        return None
    found: LineHandler | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if level < handler.level:
                continue  # Logger.callHandlers skips it too
            if found is not None or type(handler) is not LineHandler:
                return None
            found = handler
        current = current.parent if current.propagate else None
    return found


def configure_logging(
    level: str, fmt: str, request_id: contextvars.ContextVar[str], worker: int | None = None
) -> None:
    """Route every logger to stderr as JSON (or plain text for local reading).

    `worker` (a worker process's number) adds `worker` and `pid` to every line.
    """
    handler = LineHandler(sys.stderr)
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
