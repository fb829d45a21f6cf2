"""Issue 19, class 3: every log format carries the audit record, and no line carries a token.

Through `configure_logging` itself (the handler `sekisho serve` installs), in both formats: the
text format keeps every audit field and an error's detail, escaped so a value cannot forge a
line or a field; no value carries a credential in any of the forms a request can hold one
(compact JWT, query or form parameter, percent-encoded, Authorization scheme, nested, inside an
exception); every value is bounded; the gateway's no-route line keeps no query string.
"""

import contextvars
import json
import logging
import sys
from collections.abc import Callable, Iterator

import pytest
from sekisho.audit import AUDIT_FIELDS
from sekisho.logs import LineHandler, configure_logging
from sekisho.redaction import scrub, scrub_text

from tests.harness import Harness
from tests.unit.gateway.test_authorizer import build, gw

pytestmark = pytest.mark.security

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImF1ZCI6IngifQ.c2lnbmF0dXJlc2lnbmF0dXJlc2ln"
OPAQUE = "s3cr3tOpaqueValue42"

Configure = Callable[[str], None]


@pytest.fixture
def configured(capsys: pytest.CaptureFixture[str]) -> Iterator[Configure]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def configure(fmt: str) -> None:
        configure_logging("INFO", fmt, contextvars.ContextVar("request_id", default=""))

    yield configure
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _emit(
    name: str,
    message: str,
    extra: dict[str, object] | None = None,
    *,
    args: tuple[object, ...] = (),
) -> None:
    """Hand a record straight to the handler configure_logging installed (its filters and
    formatter), bypassing Logger.callHandlers so tests/log_scan.py does not flag the planted
    credentials this file feeds in on purpose."""
    exc_info = sys.exc_info() if sys.exc_info()[0] is not None else None
    record = logging.getLogger(name).makeRecord(
        name, logging.INFO, __file__, 0, message, args, exc_info, extra=extra
    )
    for handler in logging.getLogger().handlers:
        handler.handle(record)


def _write_event(name: str, event: str, fields: dict[str, object]) -> None:
    """The audit path: LineHandler.write_event (remembered field texts, jsonfields.py)."""
    for handler in logging.getLogger().handlers:
        assert isinstance(handler, LineHandler)
        assert handler.write_event(name, logging.INFO, event, dict(fields))


def _audit_fields() -> dict[str, object]:
    fields: dict[str, object] = {name: f"v-{name}" for name in AUDIT_FIELDS}
    fields["granted_scopes"] = ["crm.read", "crm.write"]
    fields["reason"] = 'denied\nFAKE 2026 INFO sekisho.audit token_exchanged kid="forged"'
    return fields


def test_text_format_keeps_every_audit_field_escaped(
    configured: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    configured("text")
    logging.getLogger("sekisho.audit").info("token_rejected", extra=_audit_fields())
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines  # the newline in `reason` did not start a forged line
    for name in AUDIT_FIELDS:
        if name not in ("granted_scopes", "reason"):
            assert f" {name}=v-{name}" in lines[0]
    assert ' granted_scopes=["crm.read","crm.write"]' in lines[0]
    assert ' reason="denied\\nFAKE' in lines[0]
    assert ' kid=\\"forged\\"' in lines[0]  # inside the quoted reason, not a field


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_errors_keep_their_detail(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    configured(fmt)
    detail = "cannot read private key for kid abc: Permission denied"
    logging.getLogger("sekisho.signing.keyring").error(
        "keyring_reload_failed", extra={"error": detail}
    )
    assert detail in capsys.readouterr().err.replace('\\"', '"')


CREDENTIAL_FORMS = {
    "jwt": f"subject token {JWT}",
    "query": f"/mcp/x?foo=1&access_token={OPAQUE}&b=2",
    "percent-encoded": f"/x?access_token%3D{OPAQUE}",
    "form": f"grant_type=x&client_secret={OPAQUE}&subject_token={OPAQUE}",
    "bearer": f"Bearer {OPAQUE}",
    "basic": f"basic {OPAQUE}",
    # The scheme pattern allows any whitespace before the credential (`\s+`), not only a space or
    # a tab: a newline, a vertical tab, a no-break or an em space must not let one through.
    "bearer-newline": f"Bearer\n{OPAQUE}",
    "dpop-vertical-tab": f"DPoP\x0b{OPAQUE}",
    "bearer-no-break-space": f"Bearer\u00a0{OPAQUE}",
    "token-em-space": f"Token\u2003{OPAQUE}",
    # The printed form (repr, as in a KeyError's message or a `%r` argument) writes those spaces
    # as escapes: `\xa0`, `\u2003`, `\u2028`.
    "repr-no-break-space": repr(f"Bearer\u00a0{OPAQUE}"),
    "repr-em-space": repr(f"Token\u2003{OPAQUE}"),
    "repr-line-separator": repr(f"Bearer\u2028{OPAQUE}"),
    "key-error-ideographic-space": str(KeyError(f"DPoP\u3000{OPAQUE}")),
    # An escape right before the scheme: `\b` sees no word boundary between `\n` and `Bearer`.
    "repr-newline-before-scheme": repr(f"Host: x\nBearer {OPAQUE}"),
    "bytes-crlf-before-scheme": str(f"\r\nBearer {OPAQUE}".encode()),
    "repr-no-break-space-before-scheme": repr(f"\xa0Bearer\xa0{OPAQUE}"),
    "octal-newline-before-scheme": f"Host: x\\012Bearer {OPAQUE}",
    # Other printed escapes of a space (`\v`, `\f`, C's octal) and invisible format characters,
    # which are not whitespace (`\s`) but separate the two as well to a reader.
    "escaped-vertical-tab": f"Bearer\\v{OPAQUE}",
    "octal-escaped-space": f"Basic\\040{OPAQUE}",
    "zero-width-space": f"Bearer\u200b{OPAQUE}",
    "byte-order-mark": f"DPoP\ufeff{OPAQUE}",
    # URL- and form-encoded (a header quoted in a query string or a form body).
    "percent-encoded-space": f"/cb?auth=Bearer%20{OPAQUE}",
    "percent-encoded-no-break-space": f"Authorization%3ABearer%C2%A0{OPAQUE}",
    "form-encoded-space": f"authorization=Bearer+{OPAQUE}",
    # Quoted, or printed as the items of a tuple (`header.split()` in a message).
    "quoted": f'Bearer "{OPAQUE}"',
    "printed-tuple": str(("Bearer", OPAQUE)),
    "printed-bytes-tuple": str((b"Bearer", OPAQUE.encode())),
    # Session 10: a colon for a separator, a scheme glued to the word before it, and schemes
    # spelled with look-alike letters (they read as the scheme to whoever reads the log).
    "colon-separator": f"Authorization:Bearer:{OPAQUE}",
    "fullwidth-colon-separator": f"DPoP\uff1a{OPAQUE}",
    "colon-and-space": f"Basic: {OPAQUE}",
    "glued-to-a-word": f"xBearer {OPAQUE}",
    "glued-to-a-digit": f"1DPoP {OPAQUE}",
    "glued-capital-basic": f"AuthorizationBasic {OPAQUE}",
    "cyrillic-scheme": f"\u0412\u0435\u0430rer {OPAQUE}",
    "greek-scheme": f"\u0392\u03b5\u03b1rer {OPAQUE}",
    "fullwidth-scheme": f"\uff22\uff45\uff41\uff52\uff45\uff52 {OPAQUE}",
    "small-capital-scheme": f"\u0299\u1d00\ua731\u026a\u1d04 {OPAQUE}",
    "cyrillic-o-in-token": f"T\u041eKEN {OPAQUE}",
    "cookie": f"session=1; id_token={OPAQUE}",
    "code": f"/callback?code={OPAQUE}&state=1",
    "unsecured-jwt": f"eyJhbGciOiJub25lIn0.e30{OPAQUE}.",
}


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize(
    "name",
    ["authorization", "cookie", "subject_token", "client_secret", "x-api-key", "client_credential"],
)
def test_credential_named_fields_and_headers_are_redacted_whatever_their_value(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str, name: str
) -> None:
    configured(fmt)
    _emit("sekisho.test", "field", {name: OPAQUE})
    _emit("sekisho.test", "header", {"headers": {name: OPAQUE, "accept": "text/plain"}})
    out = capsys.readouterr().err
    assert OPAQUE not in out
    assert "text/plain" in out  # other headers stay readable


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("form", list(CREDENTIAL_FORMS))
def test_no_credential_survives_in_any_field(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str, form: str
) -> None:
    configured(fmt)
    value = CREDENTIAL_FORMS[form]
    _emit("sekisho.test", "plain", {"path": value})
    _emit("sekisho.test", "nested", {"headers": {"x-forwarded-uri": [value]}})
    _emit("sekisho.test", "in the message %s", args=(value,))
    try:
        raise ValueError(value)
    except ValueError:
        _emit("sekisho.test", "crashed")
    out = capsys.readouterr().err
    assert len(out.splitlines()) == 4  # one line per record, tracebacks included
    assert OPAQUE not in out
    for segment in JWT.split("."):
        assert segment not in out


# A scheme and its credential as two items of one field (`value.split()` logged as a list).
SPLIT_FORMS = {
    "list": ["Bearer", OPAQUE],
    "tuple": ("x", "Basic", OPAQUE),
    "colon-item": ["Authorization:", "DPoP:", OPAQUE],
    "bytes": [b"Bearer", OPAQUE.encode()],
    "look-alike": ["\u0412\u0435\u0430rer", OPAQUE],
    "token": ["token", OPAQUE],
}


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("form", list(SPLIT_FORMS))
def test_a_credential_in_the_item_after_a_scheme_is_redacted(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str, form: str
) -> None:
    configured(fmt)
    value = SPLIT_FORMS[form]
    for _ in range(3):  # seen, then remembered (jsonfields) if it were left as it is
        _emit("sekisho.test", "split", {"parts": value})
        _emit("sekisho.test", "nested", {"headers": {"x-auth": value}})
        _write_event("sekisho.test", "written", {"parts": value})
    out = capsys.readouterr().err
    assert len(out.splitlines()) == 9
    assert OPAQUE not in out


ORDINARY = [
    "subject_token is required",
    "actor_token and actor_token_type go together",
    "invalid token: expired",
    "async def verify(self, token: str, token_type: str) -> VerifiedToken:",
    "dibasic acid",
    "cannot read private key for kid abc: Permission denied",
    "https://crm-as.example.com/mcp",
    "\u0422\u043e\u043a\u0435\u043d \u0438\u0441\u0442\u0451\u043a",  # Russian: the token expired
    # OPA's parse errors, logged in policy_reload_failed: the word after `token` is prose
    "1 error occurred: decision.rego:3: rego_parse_error: unexpected eof token this is not rego {",
    "rego_parse_error: unexpected ident token: expected rule",
    "the refresh token expired",
]


@pytest.mark.parametrize("text", ORDINARY, ids=range(len(ORDINARY)))
def test_ordinary_text_keeps_its_words(text: str) -> None:
    assert scrub_text(text) == text
    assert scrub(["crm.read", text, "crm.write"]) == ["crm.read", text, "crm.write"]


@pytest.mark.parametrize(
    "credential",
    [
        "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",  # Django REST framework
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a",  # GitHub
        "abcdefghijklmnop",  # 16 letters: longer than a word
        "hunter2",
        "fooBar",
        "a_b",
    ],
)
def test_a_token_scheme_credential_is_redacted_unless_it_is_a_word(credential: str) -> None:
    for text in (f"Authorization: Token {credential}", f"token {credential} was refused"):
        assert credential not in scrub_text(text)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_traceback_another_handler_formatted_first_is_scrubbed(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # logging.Formatter.format caches the traceback text on the record (exc_text): a handler
    # that runs before Sekisho's (one on a library's own logger runs before the root's) leaves
    # it there unscrubbed, and the scrubber must not take it as its own.
    configured(fmt)
    try:
        raise ValueError(f"upstream said: Authorization: Bearer {OPAQUE}, id_token={JWT}")
    except ValueError:
        record = logging.getLogger("lib").makeRecord(
            "lib", logging.ERROR, __file__, 0, "failed", (), sys.exc_info()
        )
    logging.Formatter().format(record)  # the other handler's formatter
    assert OPAQUE in (record.exc_text or "")
    for handler in logging.getLogger().handlers:
        handler.handle(record)
    out = capsys.readouterr().err
    assert "ValueError: upstream said" in out
    assert OPAQUE not in out
    for segment in JWT.split("."):
        assert segment not in out


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_repeated_value_is_scrubbed_every_time(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # The filter remembers strings it found clean (the audit line repeats issuer, audience and
    # scopes on every exchange); a value that carried a credential must never be remembered.
    configured(fmt)
    for _ in range(3):
        for value in CREDENTIAL_FORMS.values():
            _emit("sekisho.test", "again", {"audience": value, "scopes": [value, "crm.read"]})
            _emit("sekisho.test", "named", {"subject_token": OPAQUE, "note": "crm.read"})
    out = capsys.readouterr().err
    assert len(out.splitlines()) == 6 * len(CREDENTIAL_FORMS)
    assert OPAQUE not in out
    for segment in JWT.split("."):
        assert segment not in out
    assert out.count("crm.read") == 6 * len(CREDENTIAL_FORMS)  # clean values stay as they are


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_every_value_is_bounded(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    configured(fmt)
    huge = {"path": "/a" * 50_000, "headers": {"h": "x" * 50_000}, "ids": list(range(10_000))}
    logging.getLogger("sekisho.test").info("big", extra=huge)
    out = capsys.readouterr().err
    assert len(out) < 10_000


async def test_gateway_no_route_line_keeps_no_query_string(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    authorizer, _ = build(harness)
    caplog.set_level(logging.INFO, logger="sekisho.gateway")
    request = gw(f"/nowhere?access_token={OPAQUE}&x=" + "y" * 5000, {})
    await authorizer.authorize(request)
    (record,) = [r for r in caplog.records if r.getMessage() == "gateway_no_route"]
    assert record.path == "/nowhere"  # type: ignore[attr-defined]
    assert OPAQUE not in json.dumps(vars(record), default=str)


class _Url:
    """A value that is not a string but prints as one (a URL object, an exception, ...)."""

    def __init__(self, text: str) -> None:
        self._text = text

    def __str__(self) -> str:
        return self._text


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("form", list(CREDENTIAL_FORMS))
def test_no_credential_survives_in_a_value_that_is_not_a_string(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str, form: str
) -> None:
    # Both formats print any other value with str(): bytes, an exception, a URL object must be
    # scrubbed as the text they print as, in a field and nested.
    configured(fmt)
    value = CREDENTIAL_FORMS[form]
    _emit("sekisho.test", "bytes", {"body": value.encode()})
    _emit("sekisho.test", "error", {"error": ValueError(value), "nested": [_Url(value)]})
    _emit("sekisho.test", "object", {"url": _Url(value), "headers": {"x": (_Url(value),)}})
    out = capsys.readouterr().err
    assert len(out.splitlines()) == 3
    assert OPAQUE not in out
    for segment in JWT.split("."):
        assert segment not in out


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_numbers_booleans_and_none_stay_values(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    configured(fmt)
    _emit("sekisho.test", "values", {"n": 3, "ok": True, "gone": None, "ratio": 0.5, "l": [1]})
    out = capsys.readouterr().err
    if fmt == "text":
        expected = ("n=3", "ok=true", "gone=null", "ratio=0.5", "l=[1]")
    else:
        expected = ('"n": 3', '"ok": true', '"gone": null', '"ratio": 0.5', '"l": [1]')
    for text in expected:
        assert text in out, out


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_a_credential_named_field_is_redacted_whatever_its_type(
    configured: Configure, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    # An opaque secret has no shape to find: under a credential's name, a list of them, an
    # object printing as one or a nested dict must go as a string does.
    configured(fmt)
    _emit("sekisho.test", "list", {"x-api-key": [OPAQUE], "client_secret": _Url(OPAQUE)})
    _emit("sekisho.test", "nested", {"headers": {"cookie": [OPAQUE], "authorization": (OPAQUE,)}})
    _emit("sekisho.test", "dict", {"subject_token": {"value": OPAQUE}, "id_token": 7})
    out = capsys.readouterr().err
    assert len(out.splitlines()) == 3
    assert OPAQUE not in out
    assert ("id_token=7" if fmt == "text" else '"id_token": 7') in out  # a number is no secret
