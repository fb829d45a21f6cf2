"""A pytest plugin that fails the run if any token or private key material appears in the logs
the suite produces: every log record (all loggers; `sekisho` loggers opened down to DEBUG) plus each test's captured stderr and captured log sections.

Looked for: a JWT (three base64url segments whose first decodes to a JSON header naming `alg` or
`typ`), a PEM private key, and a JWK private member (`"d": "…"`). Captured stdout is not scanned:
printing a token is what `sekisho token` and `dev-idp token` are for; logs never may.

Enabled from tests/conftest.py. tests/security/test_log_scan.py proves it can fail.
"""

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import pytest

_JWT = re.compile(r"(eyJ[A-Za-z0-9_-]{2,})\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]*)")
_PEM_PRIVATE = re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")
_JWK_PRIVATE = re.compile(r"""["']d["']\s*:\s*["'][A-Za-z0-9_-]{16,}""")
_SCANNED_SECTIONS = ("stderr", "log")


def _json_header(segment: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and bool({"alg", "typ"} & header.keys())


def secrets_in(text: str) -> list[str]:
    """What kinds of secret `text` holds: "jwt", "pem-private-key", "jwk-private-member"."""
    found = []
    if any(_json_header(match.group(1)) for match in _JWT.finditer(text)):
        found.append("jwt")
    if _PEM_PRIVATE.search(text):
        found.append("pem-private-key")
    if _JWK_PRIVATE.search(text):
        found.append("jwk-private-member")
    return found


@dataclass
class Finding:
    where: str  # test node id, or "log record <logger>"
    kinds: list[str]


def _record_text(record: logging.LogRecord) -> str:
    """The message plus every extra field, as any formatter could render them."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    extras = {k: v for k, v in vars(record).items() if k not in _PLAIN_ATTRIBUTES}
    text = f"{message} {extras!r}"
    if record.exc_info and record.exc_info[1] is not None:
        text += f" {record.exc_info[1]!r}"
    return text


_PLAIN_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class LogScanner:
    """Collects findings (never the secrets themselves) from every log record.

    The `sekisho` logger is opened down to DEBUG so the product's INFO and DEBUG records are
    created and scanned too. To keep what the rest of the suite sees unchanged (caplog
    assertions, captured output), Logger.callHandlers is wrapped: it scans every record, then
    passes on only the records that would have been created without our DEBUG level.
    """

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.current_test = "<collection>"
        self._original = logging.Logger.callHandlers

    def scan(self, record: logging.LogRecord) -> None:
        kinds = secrets_in(_record_text(record))
        if kinds:
            self.findings.append(Finding(f"{self.current_test} (logger {record.name})", kinds))

    def install(self) -> None:
        original, scan = self._original, self.scan

        def call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            scan(record)
            if record.levelno >= _level_without_us(record.name):
                original(logger, record)

        logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
        logging.getLogger("sekisho").setLevel(logging.DEBUG)

    def uninstall(self) -> None:
        logging.Logger.callHandlers = self._original  # type: ignore[method-assign]
        logging.getLogger("sekisho").setLevel(logging.NOTSET)


def _level_without_us(name: str) -> int:
    """The effective level `name` would have had without our DEBUG on `sekisho` (a level a test
    sets on `sekisho`, e.g. caplog.at_level(logger="sekisho"), still counts)."""
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        level = logger.level
        if logger.name == "sekisho" and level == logging.DEBUG:
            level = logging.NOTSET
        if level:
            return level
        logger = logger.parent
    return logging.WARNING


_KEY = pytest.StashKey[LogScanner]()


def scanner(config: pytest.Config) -> LogScanner:
    return config.stash[_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_KEY] = LogScanner()
    config.stash[_KEY].install()


def pytest_runtest_setup(item: pytest.Item) -> None:
    scanner(item.config).current_test = item.nodeid


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when != "teardown":  # the teardown report carries every phase's sections
        return report
    for name, content in report.sections:
        if any(section in name.lower() for section in _SCANNED_SECTIONS):
            kinds = secrets_in(content)
            if kinds:
                scanner(item.config).findings.append(Finding(f"{item.nodeid} ({name})", kinds))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    log_scanner = scanner(session.config)
    log_scanner.uninstall()
    if log_scanner.findings and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    findings = scanner(config).findings
    if not findings:
        return
    terminalreporter.section("secrets in logs (tests/log_scan.py)", red=True)
    for finding in findings:
        terminalreporter.write_line(f"{', '.join(finding.kinds)}: {finding.where}")
