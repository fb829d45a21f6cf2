"""What a log line may carry: no token in any form, every value bounded (docs/security.md).

Applied to every record by the handler (both formats), after the code that logged it: the
gateway logs a request path, an IdP error may echo a URL, an exception may quote a header. So
the last line of defence rewrites, in the event and every `extra` field (nested lists and dicts
included):

- compact JWS/JWE (three or five base64url segments) → `[redacted-jwt]`;
- `name=value` where the name is a credential (access_token, id_token, subject_token,
  client_secret, assertion, code, password, …; query strings, form bodies, cookies)
  → `name=[redacted]`;
- `Bearer …`, `Basic …`, `DPoP …` credentials → `Bearer [redacted]`, also `Bearer:…`, a scheme
  glued to a preceding word (`xBearer …`) and a scheme spelled with look-alike letters
  (Cyrillic, Greek, small-capital, fullwidth); in a list, the item after a scheme alone
  (`["Bearer", "…"]`, what `header.split()` gives); after `Token`, a plain lower-case word
  is prose and kept (`_PROSE_WORD`: OPA's parse errors say `unexpected eof token this`);
- PEM private key blocks → `[redacted-private-key]`;
- strings longer than MAX_VALUE characters → cut, with the count of what was cut;
- any other value but a number or None (bytes, an exception, a URL object) → the scrubbed text
  it prints as.

Control characters survive here; each formatter escapes them (JSON by encoding, text by
quoting), so a value can never start a forged line.
"""

import logging
import re
from typing import Any

MAX_VALUE = 2048
MAX_TRACEBACK = 16384
_MAX_ITEMS = 64
_MAX_NAMES = 1024  # field names remembered as credential names or not
# Short ASCII strings remembered as clean: at most 4,096 of at most 256 bytes each (~1.3 MiB);
# a non-ASCII character may take 4 bytes, so such strings are scrubbed every time instead.
_MAX_CLEAN = 4096
_MAX_CLEAN_LENGTH = 256

_JWT = re.compile(
    r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]+){0,2}"
)
_CREDENTIAL_PARAM = re.compile(
    r"(?i)\b((?:[a-z_]*_)?(?:token|secret|assertion|password|passwd|api_?key)|code|key|sig)"
    r"(=|%3D)[^&\s;,\"']*"
)
# Also a JWT with short (or empty) segments, e.g. an unsecured `eyJhbGciOiJub25lIn0.e30.`.
_SHORT_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
# A field or header named like a credential is redacted whatever its value looks like.
_SECRET_NAME = re.compile(
    r"(?i)^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api[_-]?key|"
    r"(?:[a-z_-]*[_-])?(?:token|secret|password|passwd|assertion|credentials?))$"
)
# What separates a scheme from its credential: any whitespace; an invisible format character
# (zero-width space and joiners, word joiner, BOM, Mongolian vowel separator: not `\s`, and not
# seen by a reader); a form-encoded space (`+`) or a percent-encoded space or control character
# (`%20`, `%0A`, `%C2%A0`, `%E2%80%83`, `%E3%80%80`); or the escape text a printed form shows for
# one (`b'Bearer\\nAbc'`, `\\xc2\\xa0` for a no-break space in bytes, `\\xa0`, `\\u2003` or
# `\\u3000` in a repr or a KeyError's message, `\\v`, `\\f`, octal `\\040`), with its backslash
# doubled when that text is printed again (the bytes of a repr). Quotes and commas may stand
# between them (`Bearer "Abc"`, the items `('Bearer', 'Abc')` or `(b'Bearer', b'Abc')` of a
# printed tuple).
_SEPARATOR = (
    r"(?:[\s\u180e\u200b-\u200d\u2060\ufeff+]"
    r"|\\+(?:[tnrvf]|[0-7]{1,3}|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})"
    r"|%(?:[01][0-9a-f]|20|7f|c2%(?:85|a0)|e1%9a%80|e1%a0%8e|e2%80%(?:8[0-9a-f]|a[89f])"
    r"|e2%81%(?:9f|a0)|e3%80%80|ef%bb%bf))"
)
# The scheme starts a word, or follows such an escape directly (`'x\\nBearer Abc'`, the repr
# of a header block, or C's `\\012Bearer`; `\\b` sees no boundary between the escape's letter
# or digit and the scheme's).
_SCHEME_START = (
    r"(?:(?<!\w)|(?<=\\[tnrvf0])|(?<=\\[0-7]{3})|(?<=\\x[0-9a-f]{2})|(?<=\\u[0-9a-f]{4})"
    r"|(?<=\\U[0-9a-f]{8})|(?<=%[0-9a-f]{2}))"
)
# Each letter of a scheme, or a letter that looks like it: Cyrillic, Greek, small-capital and
# fullwidth look-alikes (Unicode confusables; the pattern is case-insensitive, so Cyrillic
# U+0412 is U+0432). `Bearer tok` spelled with a Cyrillic B, e and a (U+0412 U+0435 U+0430)
# reads as Bearer to whoever reads the log.
_LOOKS = {
    "b": "b\u0432\u03b2\u03d0\u0299\uff42",
    "e": "e\u0435\u0454\u03b5\u04bd\u1d07\uff45",
    "a": "a\u0430\u03b1\u0251\u1d00\uff41",
    "r": "r\u0433\u0280\uff52",
    "s": "s\u0455\ua731\uff53",
    "i": "i\u0456\u03b9\u0131\u0269\u026a\u04cf\uff49",
    "c": "c\u0441\u03f2\u1d04\uff43",
    "d": "d\u0501\u1d05\uff44",
    "p": "p\u0440\u03c1\u1d18\uff50",
    "o": "o\u043e\u03bf\u1d0f\uff4f",
    "t": "t\u0442\u03c4\u1d1b\uff54",
    "k": "k\u043a\u03ba\u1d0b\uff4b",
    "n": "n\u043f\u0274\uff4e",
}


def _looks_like(word: str) -> str:
    return "".join(f"[{_LOOKS[letter]}]" for letter in word)


_BEARER, _DPOP = _looks_like("bearer"), _looks_like("dpop")
_BASIC, _TOKEN = _looks_like("basic"), _looks_like("token")
# Bearer and DPoP count anywhere, also glued to a preceding word (`xBearer tok`, `1DPoP tok`: no
# English word ends in them but the rare `flagbearer`). Basic only starting a word, or glued with
# its capital `B` (`xBasic tok`; `dibasic acid` stays). Token only starting a word, and not before
# a colon: `token: str` (tracebacks quote annotations) and `token_type` are ordinary text.
# The lookaheads of the whole word come before the lookbehinds, so those run only at a scheme
# (they ran at every b, d and t that starts a word: this is as fast as the ASCII-only pattern).
_GLUED_CAPITAL = r"(?<=\w)(?-i:(?=[B\u0412\u0392\uff22]))"
_HEADER_SCHEME = (
    rf"(?P<h>{_BEARER}|{_DPOP}|(?={_BASIC})(?:{_SCHEME_START}|{_GLUED_CAPITAL}){_BASIC})"
    rf"(?:['\",]*(?:{_SEPARATOR}|[:\uff1a]))+"
)
_TOKEN_SCHEME = rf"(?={_TOKEN}){_SCHEME_START}(?P<t>{_TOKEN})(?:['\",]*{_SEPARATOR})+"
# The lookahead (a scheme's first letter) spares the alternatives at every other character.
_FIRST_LETTERS = _LOOKS["b"] + _LOOKS["d"] + _LOOKS["t"]
_AUTH_SCHEME = re.compile(
    rf"(?i)(?=[{_FIRST_LETTERS}])(?:{_HEADER_SCHEME}|{_TOKEN_SCHEME})"
    r"(?:b?['\"])?(?P<c>[A-Za-z0-9._~+/=-]+)"
)
# After `token`, an ordinary word is prose, not a credential: `unexpected eof token this is not
# rego` (OPA's parse errors), `the token expired`. A word here: a letter, then at most 14
# lower-case letters. Anything longer, or with a digit, an inner capital or a symbol, is taken
# for a credential (a Django, GitHub or opaque API token has them; Bearer, Basic and DPoP are
# redacted whatever follows).
_PROSE_WORD = re.compile(r"[A-Za-z][a-z]{0,14}")
# What the separator above starts with (the pattern runs only when one is there).
_SCHEME_SEPARATOR = re.compile(r"[\s\\%+:\uff1a\u180e\u200b-\u200d\u2060\ufeff]")
# A list item that is a scheme alone (`"Bearer tok".split()` logged as a list): the next item is
# its credential, whatever it looks like.
_BARE_SCHEME = re.compile(
    rf"(?i)\W*(?:b(?=['\"]))?\W*(?:{_BEARER}|{_DPOP}|{_BASIC}|{_TOKEN})[\W_]*"
)
_SCHEME_FIRSTS = frozenset(_FIRST_LETTERS + _FIRST_LETTERS.upper() + "'\" ")
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S
)


# Letters, digits, `_` and `-`: no pattern below can match a text of these alone (a JWT needs
# `.`, a credential parameter `=` or `%3D`, a scheme credential a separator, none of them one
# of these; a PEM block a space after BEGIN). Request, decision and token ids are made of them
# (identifiers.py, secrets).
# One pass of the regex engine over an id costs ~2k instructions, `value.strip(letters, digits,
# "_-")` ~3.4k (a search of the 64-character string per character; callgrind,
# bench/results/audit_session15.md). ASCII letters only: no IGNORECASE, no \w.
_PLAIN_TEXT = re.compile(r"[A-Za-z0-9_-]*").fullmatch


def is_plain(value: str) -> bool:
    """True when `value` is at most MAX_VALUE characters of letters, digits, `_` and `-` only:
    `scrub_text` returns it unchanged (tests/security/test_redaction_fast_path.py)."""
    return len(value) <= MAX_VALUE and _PLAIN_TEXT(value) is not None


def scrub_text(value: str, limit: int = MAX_VALUE) -> str:
    """`value` with credentials replaced and its length bounded to `limit` characters."""
    if len(value) <= limit and is_plain(value):
        return value  # nothing below can match
    if len(value) > limit:
        value = f"{value[:limit]}…(+{len(value) - limit} chars)"
    # Each pattern runs only when the characters it needs are there: this is on the audit path.
    if "-----BEGIN" in value:
        value = _PEM.sub("[redacted-private-key]", value)
    if value.count(".") >= 2:
        value = _JWT.sub("[redacted-jwt]", value)
        value = _SHORT_JWT.sub("[redacted-jwt]", value)
    if _SCHEME_SEPARATOR.search(value):
        value = _AUTH_SCHEME.sub(_scheme_redacted, value)
    if "=" in value or "%3" in value:
        value = _CREDENTIAL_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}[redacted]", value)
    return value


def _scheme_redacted(match: re.Match[str]) -> str:
    token = match.group("t")
    if token and _PROSE_WORD.fullmatch(match.group("c")):
        return match.group()
    return f"{match.group('h') or token} [redacted]"


def _is_bare_scheme(value: object) -> bool:
    if isinstance(value, bytes):
        value = str(value)
    return (
        isinstance(value, str)
        and value[:1] in _SCHEME_FIRSTS
        and len(value) <= 16
        and _BARE_SCHEME.fullmatch(value) is not None
    )


def _credentials_after_schemes(original: list[Any], items: list[Any]) -> list[Any]:
    """`items` (the scrubbed `original`) with each item after a bare scheme item redacted."""
    for index in range(len(items) - 1):
        follower = original[index + 1]
        is_value = follower is not None and not isinstance(follower, (int, float))
        if is_value and _is_bare_scheme(original[index]):
            items[index + 1] = "[redacted]"
    return items


def _scrub_bytes(value: bytes | bytearray) -> str:
    """The scrubbed text bytes print as; when their UTF-8 holds a credential the printed form
    hides (a look-alike scheme prints as `\\xd0\\x92…`), the scrubbed decoded text instead."""
    printed = scrub_text(str(value))
    if value.isascii():
        return printed
    decoded = bytes(value[: MAX_VALUE * 4]).decode("utf-8", "replace")
    scrubbed = scrub_text(decoded)
    return printed if scrubbed == decoded else scrubbed


def scrub(value: Any) -> Any:
    """Strings scrubbed, containers walked (at most _MAX_ITEMS entries each), numbers and None
    as they are; anything else (bytes, an exception, a URL object) is the scrubbed text it would
    print as, since both formats print it with str()."""
    if isinstance(value, str):
        return scrub_text(value)
    if value is None or isinstance(value, (int, float)):  # bool is an int
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        kept = list(value)[:_MAX_ITEMS]
        items = _credentials_after_schemes(kept, [scrub(item) for item in kept])
        return [*items, "…"] if len(value) > _MAX_ITEMS else items
    if isinstance(value, dict):
        pairs = list(value.items())[:_MAX_ITEMS]
        return {scrub_text(str(k)): scrub_named(str(k), v) for k, v in pairs}
    if isinstance(value, (bytes, bytearray)):
        return _scrub_bytes(value)
    return scrub_text(str(value))


def scrub_named(name: str, value: Any) -> Any:
    """`scrub(value)`, or `[redacted]` outright when `name` is a credential's name (whatever the
    value but a number or None: a list of opaque secrets has no shape to find either)."""
    if value is None or isinstance(value, (int, float)):
        return value
    return "[redacted]" if _SECRET_NAME.match(name) else scrub(value)


class ScrubFilter(logging.Filter):
    """Scrubs the message and every extra field of each record (see the module docstring).

    On the audit path (one record of ~20 fields per exchange), so it visits only the record's
    extra fields, leaves numbers and None alone, remembers which field names are credentials'
    names (the names are the code's `extra=` keys: a small, fixed set), and remembers short
    ASCII strings it found clean (issuer, audience, scopes, token types repeat on every audit line):
    scrub_text is a pure function of the string, so a string clean once is clean again. Only
    strings that passed unchanged are remembered: a value that had a credential cut out never is.
    """

    def __init__(self, standard: frozenset[str]) -> None:
        super().__init__()
        self._standard = standard
        self._secret_names: dict[str, bool] = {}
        self._clean: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub_text(record.getMessage()), None
        self.scrub_fields(record.__dict__)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:  # ours, or cached unscrubbed by a handler that formatted it first
            record.exc_text = scrub_text(record.exc_text, limit=MAX_TRACEBACK)
        return True

    def scrub_fields(self, fields: dict[str, Any]) -> None:
        """Scrub, in place, every entry of `fields` but the standard record attributes: a
        record's `__dict__`, or the extra fields of an event written without a record
        (logs.LineHandler.write_event)."""
        # The record path: a field name seen before and a string found clean before are one
        # dict or set lookup here, not a method call each.
        standard, names, clean = self._standard, self._secret_names, self._clean
        for key, value in fields.items():  # values replaced in place: the dict keeps its size
            if key in standard or value is None or isinstance(value, (int, float)):
                continue  # a record attribute, or a number (bool is an int) or None
            secret = names.get(key)
            if secret is None:
                secret = self._is_secret_name(key)
            if secret:
                fields[key] = "[redacted]"
            elif type(value) is str:
                if value not in clean:
                    fields[key] = self._text(value)
            elif (type(value) is list or type(value) is tuple) and len(value) <= _MAX_ITEMS:
                # A tuple becomes the list scrub() makes of it (the same JSON array).
                if all([type(v) is str and v in clean for v in value]):
                    if type(value) is tuple:
                        fields[key] = list(value)
                    continue  # remembered clean, and none a bare scheme (_text): as it is
                items = [v if type(v) is str and v in clean else self._item(v) for v in value]
                fields[key] = _credentials_after_schemes(list(value), items)
            else:
                fields[key] = scrub(value)

    def scrub_field(self, name: str, value: Any) -> Any:
        """What `scrub_fields` makes of the field `name` = `value` (the value itself when it
        stays as it is), without changing anything: a pure function of the two."""
        if type(value) is str:  # first: most fields of the audit line
            if name in self._standard:
                return value
            secret = self._secret_names.get(name)
            if secret is None:
                secret = self._is_secret_name(name)
            if secret:
                return "[redacted]"
            if is_plain(value) or value in self._clean:  # every id of the audit line is plain
                return value
            return self._text(value)
        if value is None or isinstance(value, (int, float)):
            return value  # as scrub_fields: a number (bool is an int) or None stays
        one = {name: value}
        self.scrub_fields(one)
        return one[name]

    def _item(self, value: Any) -> Any:
        return self._text(value) if type(value) is str else scrub(value)

    def _text(self, value: str) -> str:
        if value in self._clean:
            return value
        scrubbed = scrub_text(value)
        clean = scrubbed == value and len(value) <= _MAX_CLEAN_LENGTH and value.isascii()
        # A bare scheme is never remembered: the item after it in a list must be redacted.
        if clean and not _is_bare_scheme(value):
            if len(self._clean) >= _MAX_CLEAN:
                self._clean.clear()
            self._clean.add(value)
        return scrubbed

    def _is_secret_name(self, name: str) -> bool:
        known = self._secret_names.get(name)
        if known is None:
            if len(self._secret_names) >= _MAX_NAMES:
                self._secret_names.clear()
            known = self._secret_names[name] = _SECRET_NAME.match(name) is not None
        return known
