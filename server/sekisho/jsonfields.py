"""The JSON text of a log line's fields from remembered pieces (logs.JsonLineFormatter).

The audit line repeats most of its values on every exchange — issuer, audience, scopes,
resources, token type, kid, caller — and every field name. The C encoder escapes each of them
again per line (a third of the line's cost, bench/results/observability_session6.md). Here the
JSON text of a field name, and of a short string value, is made once by the same C escaper and
remembered (bounded, cleared whole); everything else is encoded by the formatter's own C
encoder. The text is the encoder's to the byte: `", "` between items, `": "` after names,
ASCII escapes (tests/security/test_audit_line.py compares it with the record path).
"""

from _json import encode_basestring_ascii
from collections.abc import Callable
from typing import Any

_MAX_REMEMBERED = 4096
_MAX_REMEMBERED_LENGTH = 256


class FieldEncoder:
    """`, "name": value` for each field, the values' JSON text remembered when short strings."""

    def __init__(self, encode: Callable[[Any], str]) -> None:
        """`encode`: the formatter's JSON encoder for any other value."""
        self._encode = encode
        self._names: dict[str, str] = {}
        self._strings: dict[str, str] = {}

    def items(self, fields: dict[str, Any]) -> str | None:
        """The JSON text of `fields`' items, each preceded by `", "`; None when a name is not a
        string (the encoder decides what that means)."""
        names, strings = self._names, self._strings
        parts = []
        for name, value in fields.items():
            prefix = names.get(name)
            if prefix is None:
                if type(name) is not str:
                    return None
                prefix = self._name(name)
            parts.append(prefix)
            if type(value) is str:
                text = strings.get(value)
                parts.append(self._string(value) if text is None else text)
            elif type(value) is list and all(type(item) is str for item in value):
                parts.append(f"[{', '.join([self._text(item) for item in value])}]")
            else:
                parts.append(self._encode(value))
        return "".join(parts)

    def _text(self, value: str) -> str:
        text = self._strings.get(value)
        return self._string(value) if text is None else text

    def _name(self, name: str) -> str:
        if len(self._names) >= _MAX_REMEMBERED:
            self._names.clear()
        prefix = self._names[name] = f", {encode_basestring_ascii(name)}: "
        return prefix

    def _string(self, value: str) -> str:
        text = encode_basestring_ascii(value)
        if len(value) <= _MAX_REMEMBERED_LENGTH:
            if len(self._strings) >= _MAX_REMEMBERED:
                self._strings.clear()
            self._strings[value] = text
        return text
