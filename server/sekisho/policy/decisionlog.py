"""The decision log (`[decision_log]`, off by default): one JSON line per policy decision with
the input as the engine saw it and the decision, for `sekisho policy impact` and for OPA tooling.

Each line is shaped like an OPA decision log event (docs/operations.md#decision-log):
`decision_id`, `path` (the query's entrypoint), `input`, `result` (the decision with every
field's default filled in) or `error` ({code, message}) when the engine could not answer,
`timestamp` (RFC 3339, nanoseconds, UTC), `labels` ({id, app, version}), `metrics`
({timer_sekisho_policy_decide_ns}), and `masked` / `erased` (JSON pointers redaction touched).
A cached decision is logged again under its original decision_id, as the response carries it.

It contains personal data (docs/operations.md#decision-log) and is separate from the audit log.
The exchange only enqueues (a bounded queue.Queue); a writer thread redacts, encodes and
writes, so disk and JSON work never run on the event loop. A full queue drops the record and
counts it (`dropped`); a failed write is logged and counted (`failed`) and the writer goes on.
"""

import datetime
import json
import logging
import queue
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sekisho
from sekisho.policy.difference import decision_document
from sekisho.policy.redaction import Redactor
from sekisho.policy.rotation import RotatingFile
from sekisho.policy.tap import ObservedDecision

log = logging.getLogger(__name__)

DECIDE_TIMER = "timer_sekisho_policy_decide_ns"
_STOP = None


def rfc3339(timestamp: float) -> str:
    """`2026-12-02T04:25:41.123456789Z`, the timestamp format of OPA's decision log."""
    seconds = int(timestamp)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    nanos = round((timestamp - seconds) * 1e9) % 1_000_000_000
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def default_labels() -> dict[str, str]:
    """OPA-style labels naming this process: a fresh id, the app and its version."""
    return {"id": str(uuid.uuid4()), "app": "sekisho", "version": sekisho.__version__}


class DecisionEvents:
    """Turns an observed decision into an OPA-shaped decision log event."""

    def __init__(self, path: str, redactor: Redactor, labels: dict[str, str]) -> None:
        self._path = path
        self._redactor = redactor
        self._labels = labels

    def event(self, observed: ObservedDecision) -> dict[str, Any]:
        decision = observed.decision
        result = None if decision is None else decision_document(decision)
        redacted = self._redactor.redact(observed.document, result)
        event: dict[str, Any] = {
            "decision_id": decision.decision_id if decision else "",
            "path": self._path,
            "input": redacted.input,
            "timestamp": rfc3339(observed.timestamp),
            "labels": self._labels,
            "metrics": {DECIDE_TIMER: observed.elapsed_ns},
        }
        if redacted.result is not None:
            event["result"] = redacted.result
        if observed.error is not None:
            event["error"] = {"code": observed.error.reason, "message": observed.error.log_detail}
        if redacted.masked:
            event["masked"] = redacted.masked
        if redacted.erased:
            event["erased"] = redacted.erased
        return event


class DecisionLog:
    """DecisionObserver that writes events from a thread; `written`, `dropped`, `failed` count
    records, and `on_count(outcome)` (metrics) is called once per record."""

    def __init__(
        self,
        events: DecisionEvents,
        file: RotatingFile,
        *,
        queue_size: int,
        on_count: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self._events = events
        self._file = file
        self._queue: queue.Queue[ObservedDecision | None] = queue.Queue(maxsize=queue_size)
        self._on_count = on_count
        self._thread = threading.Thread(
            target=self._drain, name="sekisho-decision-log", daemon=True
        )
        self.written = 0
        self.dropped = 0
        self.failed = 0

    @property
    def path(self) -> Path:
        """The file written (this worker's, with server.workers > 1)."""
        return self._file.path

    def start(self) -> None:
        self._thread.start()

    def offer(self, observed: ObservedDecision) -> None:
        try:
            self._queue.put_nowait(observed)
        except queue.Full:
            self.dropped += 1
            self._on_count("dropped")

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread (blocking: call it off the event loop)."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP, timeout=timeout)
        self._thread.join(timeout)

    def _drain(self) -> None:
        while True:
            observed = self._queue.get()
            if observed is _STOP:
                break
            self._write(observed)
            if self._queue.empty():
                self._flush()
        self._flush()
        self._file.close()

    def _write(self, observed: ObservedDecision) -> None:
        try:
            line = json.dumps(self._events.event(observed), separators=(",", ":"), default=str)
            self._file.write(line.encode())
        except Exception:  # the writer thread's loop: log, count, go on
            log.exception("decision_log_write_failed", extra={"path": str(self._file.path)})
            self.failed += 1
            self._on_count("failed")
            return
        self.written += 1
        self._on_count("written")

    def _flush(self) -> None:
        try:
            self._file.flush()
        except OSError:
            log.exception("decision_log_flush_failed", extra={"path": str(self._file.path)})
