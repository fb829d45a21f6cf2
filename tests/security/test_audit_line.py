"""The audit line written without a LogRecord (logs.LineHandler.write_event, the path every
exchange takes under `configure_logging`) is the line the stdlib path writes: every field in the
same order, the same stamps, scrubbed of credentials, escaped, one flushed write per exchange.
When anything else would see the record (another handler, a filter), the record path is taken."""

import contextvars
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sekisho.audit import AUDIT_FIELDS, AuditLog
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.errors import InvalidTargetError
from sekisho.identifiers import subject_hash
from sekisho.logs import LineHandler, configure_logging, direct_handler
from sekisho.models import Caller, ExchangeRequest, MintedToken, VerifiedToken

pytestmark = pytest.mark.security

AUDIT = logging.getLogger("sekisho.audit")
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImF1ZCI6IngifQ.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"
OPAQUE = "s3cr3tOpaqueValue42"
WALL = 1_796_176_800.25


class CountingStream(io.StringIO):
    """stderr stand-in: counts writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


RequestId = contextvars.ContextVar[str]


@pytest.fixture
def request_id() -> RequestId:
    return contextvars.ContextVar("request_id", default="")


Configure = Callable[..., CountingStream]


@pytest.fixture
def configured(request_id: RequestId) -> Iterator[Configure]:
    """configure_logging as `sekisho serve` calls it, its handler writing to a counted stream.
    Called in the test body: pytest adds its capture handlers to the root after fixtures."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def configure(fmt: str = "json", worker: int | None = None) -> CountingStream:
        out = CountingStream()
        configure_logging("INFO", fmt, request_id, worker=worker)
        handler = root.handlers[0]
        assert isinstance(handler, LineHandler)
        handler.setStream(out)
        handler._wall_time = lambda: WALL  # what a LogRecord's `created` would read
        return out

    yield configure
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _exchange(**overrides: Any) -> tuple[ExchangeRequest, VerifiedToken, MintedToken]:
    caller = Caller(id="spiffe://example.org/agent", spiffe_id="spiffe://example.org/agent",
                    authenticated_by="mtls")  # fmt: skip
    values: dict[str, Any] = {
        "audience": "https://crm-as.example.com",
        "scopes": ("crm.read",),
        "resources": ("https://crm.example.com/mcp",),
    } | overrides
    request = ExchangeRequest(
        subject_token=JWT,
        subject_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        requested_token_type=TOKEN_TYPE_ID_JAG,
        caller=caller,
        **values,
    )
    subject = VerifiedToken(
        issuer="https://idp.example.com", subject="alice", token_type="access_token",
        expires_at=2_000_000_000,
    )  # fmt: skip
    minted = MintedToken(
        token=JWT, jti="I8THLoyK1Q_HRVQMXOREIA", kid="kid-1", issued_at=1, expires_at=301,
        issued_token_type=TOKEN_TYPE_ID_JAG, token_type="N_A", audience=request.audience,
        scopes=request.scopes, resources=request.resources,
    )  # fmt: skip
    return request, subject, minted


def _lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_the_handler_serve_installs_is_written_to_directly(configured: Configure) -> None:
    configured()
    assert direct_handler(AUDIT, logging.INFO) is logging.getLogger().handlers[0]
    AUDIT.setLevel(logging.WARNING)
    try:
        assert direct_handler(AUDIT, logging.INFO) is None  # level off: nothing, as log.info
    finally:
        AUDIT.setLevel(logging.NOTSET)


def test_the_allow_line_has_every_field_in_order(
    configured: Configure, request_id: RequestId
) -> None:
    stream = configured()
    request_id.set("req-7")
    request, subject, minted = _exchange()
    AuditLog(request_id).exchanged(request, subject, minted, "dec-1", reason="sales may read")
    (line,) = _lines(stream)
    fields = json.loads(line)
    head = ["time", "level", "logger", "event"]
    assert list(fields) == [*head, *AUDIT_FIELDS, "exp"]
    assert fields == {
        "time": fields["time"], "level": "INFO", "logger": "sekisho.audit",
        "event": "token_exchanged", "outcome": "allow", "decision_id": "dec-1",
        "request_id": "req-7", "caller": "spiffe://example.org/agent",
        "caller_spiffe_id": "spiffe://example.org/agent", "caller_authenticated_by": "mtls",
        "actor": "", "iss": "https://idp.example.com", "sub_hash": subject_hash("https://idp.example.com", "alice"),
        "audience": "https://crm-as.example.com", "requested_scopes": ["crm.read"],
        "granted_scopes": ["crm.read"], "resources": ["https://crm.example.com/mcp"],
        "requested_token_type": TOKEN_TYPE_ID_JAG, "kid": "kid-1", "jti": "I8THLoyK1Q_HRVQMXOREIA",
        "reason": "sales may read", "code": "", "exp": 301,
    }  # fmt: skip
    assert fields["time"].endswith(",250")
    assert (stream.writes, stream.flushes) == (1, 1)  # one write per line, flushed at once


def _record_path_line(
    write: Callable[[], None], out: io.StringIO, logger: logging.Logger = AUDIT
) -> None:
    """Run `write()` through the stdlib record path (a pass-through filter on the logger makes
    direct_handler refuse), with each record's `created` pinned to WALL."""

    def pin(record: logging.LogRecord) -> bool:
        record.created = WALL
        record.msecs = int((WALL - int(WALL)) * 1000)
        return True

    logger.addFilter(pin)
    try:
        assert direct_handler(logger, logging.INFO) is None
        write()
    finally:
        logger.removeFilter(pin)


@pytest.mark.parametrize("worker", [None, 3], ids=["one-process", "worker"])
@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_direct_line_is_the_record_line(
    request_id: RequestId, fmt: str, worker: int | None, configured: Configure
) -> None:
    out = configured(fmt, worker)
    request_id.set("req-9")
    request, subject, minted = _exchange(audience=f"https://as.example.com/?access_token={OPAQUE}")
    # No JWT here: tests/log_scan.py scans every record before any filter (the record path).
    error = InvalidTargetError("no", log_detail=f"bad\nFAKE Authorization: Bearer {OPAQUE}")

    def write() -> None:
        AuditLog(request_id).exchanged(request, subject, minted, "dec-2", reason="r\x00\n")
        AuditLog(request_id).rejected(request, subject, error, "dec-3")

    assert direct_handler(AUDIT, logging.INFO) is not None
    write()
    direct = _lines(out)
    assert len(direct) == 2
    _record_path_line(write, out)
    assert _lines(out)[2:] == direct  # byte for byte: fields, order, stamps, scrubbing, escapes
    assert OPAQUE not in out.getvalue()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_the_direct_line_is_scrubbed_and_cannot_forge_a_line(
    request_id: RequestId, fmt: str, configured: Configure
) -> None:
    # Caller-chosen fields (audience, scopes, resources) and the policy's reason carry what the
    # caller sent: a credential in any of them never reaches the log, nor does a raw NUL or
    # newline (the scrubber removes the credential; the format escapes control characters).
    out = configured(fmt)
    assert direct_handler(AUDIT, logging.INFO) is not None
    request, subject, minted = _exchange(
        audience=f"https://as.example.com/cb?code={OPAQUE}",
        scopes=(f"Bearer {OPAQUE}", "crm.read"),
        resources=(f"https://x.example.com/{JWT}",),
    )
    for _ in range(2):  # the second time through the scrubber's remembered-clean strings
        AuditLog(request_id).exchanged(
            request, subject, minted, "dec-4", reason=f"a\x00b\nFAKE INFO token_exchanged {JWT}"
        )
    text = out.getvalue()
    assert len(text.splitlines()) == 2
    assert OPAQUE not in text
    for segment in JWT.split("."):
        assert segment not in text
    assert "\x00" not in text
    assert "crm.read" in text


def test_another_handler_sees_the_record(
    configured: Configure, caplog: pytest.LogCaptureFixture
) -> None:
    stream = configured()
    # caplog's handler on the root: the event goes the stdlib way, to both handlers.
    logging.getLogger().addHandler(caplog.handler)
    assert direct_handler(AUDIT, logging.INFO) is None
    request, subject, minted = _exchange()
    AuditLog().exchanged(request, subject, minted, "dec-5")
    (record,) = [r for r in caplog.records if r.name == "sekisho.audit"]
    assert record.getMessage() == "token_exchanged"
    assert record.decision_id == "dec-5"  # type: ignore[attr-defined]
    assert len(_lines(stream)) == 1


def test_an_unknown_filter_on_the_handler_takes_the_record_path(configured: Configure) -> None:
    stream = configured()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, LineHandler)
    seen: list[str] = []

    def tap(record: logging.LogRecord) -> bool:
        seen.append(record.getMessage())
        return True

    handler.addFilter(tap)
    fields: dict[str, Any] = {"outcome": "allow"}
    assert not handler.write_event("sekisho.audit", logging.INFO, "token_exchanged", fields)
    assert fields == {"outcome": "allow"} and _lines(stream) == []  # nothing written or changed
    request, subject, minted = _exchange()
    AuditLog().exchanged(request, subject, minted, "dec-6")
    assert seen == ["token_exchanged"]
    assert len(_lines(stream)) == 1


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_any_fields_give_the_record_line(configured: Configure, fmt: str) -> None:
    # The JSON of the direct path is assembled from remembered pieces (jsonfields.py): every
    # kind of value must come out as the encoder writes it.
    out = configured(fmt)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, LineHandler)
    fields: dict[str, Any] = {
        "n": 3, "ok": True, "gone": None, "ratio": 0.5, "nan": float("nan"), "l": [1, "a"],
        "empty": [], "d": {"k": "v", "n": [None]}, "s": "é\u2028\x7f\"\\", "t": ("x",),
        "long": "y" * 300, "b": b"bytes", "names": ["a", "é"],
    }  # fmt: skip
    for _ in range(2):  # the second time from the remembered pieces
        assert handler.write_event("sekisho.test", logging.INFO, "odd", dict(fields))
    logger = logging.getLogger("sekisho.test")
    _record_path_line(lambda: logger.info("odd", extra=dict(fields)), out, logger)
    first, second, recorded = _lines(out)
    assert first == second == recorded
