"""Structured logging: one JSON object per line on stderr, event name as the message."""

import contextvars
import logging
import sys

from pythonjsonlogger.json import JsonFormatter


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


def configure_logging(level: str, fmt: str, request_id: contextvars.ContextVar[str]) -> None:
    """Route every logger to stderr as JSON (or plain text for local reading)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={
                    "asctime": "time",
                    "levelname": "level",
                    "name": "logger",
                    "message": "event",
                },
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RequestIdFilter(request_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # watchfiles reports every change batch at INFO; Sekisho logs its own `files_changed` event.
    logging.getLogger("watchfiles").setLevel(logging.WARNING)
