"""The scrubber's fast paths change nothing it would write (redaction.py, jsonfields.py): a plain
string (letters, digits, `_`, `-`) is left as scrub_text leaves it, and a field text remembered
for a (name, value) pair is the text scrubbing that pair again gives; a value the scrubber changes
is never remembered and is scrubbed on every line, however often it comes. Lines are compared
with the record path (the stdlib LogRecord through the same filters and formatter)."""

import logging
import random
import string
from collections.abc import Callable
from typing import Any

import pytest
from sekisho.logs import LineHandler
from sekisho.redaction import MAX_VALUE, is_plain, scrub_text

from tests.security.test_audit_line import (
    JWT,
    OPAQUE,
    WALL,
    Configure,
    _lines,
    configured,  # noqa: F401 (fixture)
    request_id,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.security

PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
# Each would be rewritten by the scrubber, or sits at the edge of what the fast paths accept.
ADVERSARIAL = [
    JWT, f"x {JWT} y", "eyJhbGciOiJub25lIn0.e30.", f"Bearer {OPAQUE}", f"DPoP\t{OPAQUE}",
    f"https://as.example.com/?access_token={OPAQUE}", f"code%3D{OPAQUE}", f"password={OPAQUE}",
    PEM, "-----BEGIN", "-----BEGIN-PRIVATE-KEY-----", "a" * MAX_VALUE, "b" * (MAX_VALUE + 1),
    "plain-id_42", "", "é", "\x00", "a\nb", "token", "ab.cd.ef", "aaaaaaaa.bbbbbbbb.cccccccc",
    "key=v", "sig%3d" + OPAQUE, "Basic dXNlcjpwYXNz", "x" * 300, "\u2028", "tab\there",
]  # fmt: skip


def _plain_or_not(draw: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "_-" + ".= %\t\n" + "é\u00a0/:"
    length = draw.choice([0, 1, 8, 22, 36, 64, MAX_VALUE, MAX_VALUE + 1])
    return "".join(draw.choice(alphabet) for _ in range(length))


@pytest.mark.parametrize("value", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_a_plain_string_is_what_scrub_text_leaves(value: str) -> None:
    if is_plain(value):
        assert scrub_text(value) == value
    assert is_plain(value) == (len(value) <= MAX_VALUE and value.strip(_plain()) == "")


def test_random_plain_strings_pass_scrub_text_unchanged() -> None:
    draw = random.Random(12)  # noqa: S311 (reproducible)
    plain = 0
    for _ in range(3000):
        value = _plain_or_not(draw)
        if is_plain(value):
            plain += 1
            assert scrub_text(value) == value
    assert plain > 100  # the property was exercised


def _plain() -> str:
    return string.ascii_letters + string.digits + "_-"


def _record_line(handler: LineHandler, fields: dict[str, Any]) -> None:
    """The record path: a LogRecord through the handler's filters and formatter, handed to it
    as Logger.callHandlers would but around tests/log_scan.py, which would flag the planted
    credentials (as tests/security/test_log_hygiene.py does)."""
    record = logging.getLogger("sekisho.test").makeRecord(
        "sekisho.test", logging.INFO, __file__, 0, "odd", (), None, extra=fields
    )
    record.created, record.msecs = WALL, int((WALL - int(WALL)) * 1000)
    handler.handle(record)


def _fields(value: Any) -> dict[str, Any]:
    """One field of each kind around `value`: a free name, a credential's name, a tuple."""
    return {
        "audience": value, "token": value, "scopes": (value, "crm.read"), "n": 3, "none": None,
        "refresh_secret": (value,), "id": "7d3c0a5e-1f8b-4a52-9d0e-2b6f1c9e8a41",
    }  # fmt: skip


@pytest.mark.parametrize("value", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_remembered_fields_give_the_record_line(configured: Configure, value: str) -> None:  # noqa: F811
    out = configured()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, LineHandler)
    for _ in range(3):  # seen, remembered, then written from the remembered text
        assert handler.write_event("sekisho.test", logging.INFO, "odd", _fields(value))
    _record_line(handler, _fields(value))
    first, second, third, recorded = _lines(out)
    assert first == second == third == recorded
    assert OPAQUE not in out.getvalue()


def test_a_clean_value_remembered_does_not_wave_through_another(
    configured: Configure,  # noqa: F811
) -> None:
    """The memory is per (name, value), never per name: a credential arriving under a name whose
    earlier values were clean (and remembered) is still scrubbed, on every line."""
    out = configured()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, LineHandler)
    write: Callable[[str], bool] = lambda audience: handler.write_event(  # noqa: E731
        "sekisho.audit", logging.INFO, "token_exchanged", {"audience": audience}
    )
    for _ in range(3):
        assert write("https://crm-as.example.com")
    for _ in range(3):
        assert write(f"https://crm-as.example.com/?access_token={OPAQUE}")
        assert write(f"{JWT}")
    text = out.getvalue()
    assert OPAQUE not in text
    assert JWT.split(".")[1] not in text
    assert text.count("access_token=[redacted]") == 3
    assert text.count("[redacted-jwt]") == 3
