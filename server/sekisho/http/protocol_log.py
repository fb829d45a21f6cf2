"""What the HTTP listeners log about requests aiohttp's parser refuses: one counted line per
interval instead of an ERROR traceback per request.

aiohttp answers a request its parser cannot read (a DEL or NUL in a header value, a malformed
request line or chunk size, a header line too long) with 400 and logs it through the handler's
logger with `logger.exception`: an ERROR line carrying the parser's traceback for every such
request. That cost ~0.18 ms of the event loop to format and scrub and ~0.5-1 KB of log per
request that costs its sender a few bytes and no credential, on the public listener and the
metrics listener alike, and an ERROR line is what operators alert on
(bench/results/redteam_session11.md). The handler's logger is this adapter instead: a parser
refusal (aiohttp's HttpProcessingError) is counted and reported as at most one WARNING
`http_bad_requests` line per interval, without a traceback; anything else goes to aiohttp's
logger unchanged (log_throttle.py, as for the gRPC admission gate's `overload_shed`).
"""

import logging
from collections.abc import MutableMapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from sekisho.clock import Clock
from sekisho.log_throttle import SUMMARY_INTERVAL, LogThrottle

log = logging.getLogger(__name__)


class ProtocolErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp RequestHandler's `logger`: parser refusals counted, everything else passed on."""

    def __init__(self, clock: Clock, interval: float = SUMMARY_INTERVAL) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._throttle = LogThrottle(clock, interval)
        self.refused = 0

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        problem = kwargs.get("exc_info")
        if isinstance(problem, HttpProcessingError):
            self._count(problem)
            return
        super().log(level, msg, *args, **kwargs)

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return msg, kwargs  # no extra fields: the records are aiohttp's own

    def _count(self, problem: HttpProcessingError) -> None:
        self.refused += 1
        if (refused := self._throttle.count()) is None:
            return
        log.warning(
            "http_bad_requests",
            extra={
                "refused": refused,  # since the last line (the first: this one)
                "interval": self._throttle.interval,
                "status": problem.code,
                "last": type(problem).__name__,
            },
        )
