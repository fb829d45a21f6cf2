"""The HTTP listeners' logger for requests aiohttp's parser refuses (http/protocol_log.py): counted,
one line per interval, never a traceback; every other record reaches aiohttp's logger as before."""

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage, BadHttpMethod, LineTooLong
from sekisho.http.protocol_log import ProtocolErrorLog

from tests.fakes.clock import FakeClock


def _lines(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


def test_parser_refusals_are_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock(1_800_000_000)
    logger = ProtocolErrorLog(clock, interval=10.0)
    caplog.set_level(logging.DEBUG)
    for problem in (BadHttpMessage("bad"), LineTooLong("line", "8190"), BadHttpMethod("x")) * 4:
        logger.exception("Error handling request from %s", "127.0.0.1", exc_info=problem)
    clock.advance(10.0)
    logger.debug("Error handling request from %s", "127.0.0.1", exc_info=BadHttpMessage("bad"))
    lines = _lines(caplog, "http_bad_requests")
    assert [getattr(r, "refused", None) for r in lines] == [1, 12]
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in lines)
    assert not [r for r in caplog.records if r.name == "aiohttp.server"]
    assert logger.refused == 13


def test_other_errors_reach_aiohttps_logger_with_their_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = ProtocolErrorLog(FakeClock(1_800_000_000))
    caplog.set_level(logging.DEBUG)
    try:
        raise RuntimeError("a handler's own failure")
    except RuntimeError as exc:
        logger.exception("Error handling request from %s", "127.0.0.1", exc_info=exc)
    (record,) = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert record.levelno == logging.ERROR and record.exc_info
    assert record.getMessage() == "Error handling request from 127.0.0.1"
    assert _lines(caplog, "http_bad_requests") == []
