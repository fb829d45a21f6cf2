"""The JSON text of a log line's fields, scrubbed, from remembered pieces (logs.JsonLineFormatter).

The audit line repeats most of its fields on every exchange — outcome, caller, issuer, audience,
scopes, resources, token type, kid, reason — and each would be scrubbed and escaped again per
line (bench/results/observability_session6.md, observability_session7.md). Here the text of a
whole field, `, "name": value`, is remembered per (name, value) once the same pair is seen a
second time, and only when the scrubber left the value as it was (str, or a tuple of str): the
scrubber is a pure function of name and value, and so is the encoder, so a remembered text is the
text the pair would give again; a value the scrubber changed is never remembered (no credential
is kept as a key) and is scrubbed every time. Everything else is scrubbed and encoded field by
field (the formatter's own C encoder; strings by the same C escaper). The text is the encoder's
to the byte: `", "` between items, `": "` after names, ASCII escapes (tests/security/
test_audit_line.py compares it with the record path).
"""

from _json import encode_basestring_ascii
from collections.abc import Callable
from sys import getsizeof
from typing import Any, Protocol, cast

# What is remembered is bounded in entries and in bytes (a caller chooses audiences, scopes and
# resources): a value of at most 256 characters (a tuple: all its items together), whose field
# text is at most 512 (escapes of non-ASCII text are six characters each); at most 4,096 pairs
# and _MAX_REMEMBERED_BYTES of them as sys.getsizeof counts the value, its items and the text
# (a character may take 4 bytes and each item of a tuple is an object of its own, so a count of
# characters alone would allow ~10 times that). A pair met once is remembered as its hash only.
_MAX_REMEMBERED = 4096
_MAX_REMEMBERED_LENGTH = 256
_MAX_REMEMBERED_TEXT = 512
_MAX_REMEMBERED_ITEMS = 16
_MAX_REMEMBERED_BYTES = 2 * 1024 * 1024
_ENTRY_BYTES = 112  # per remembered pair beyond its value and text: the key tuple, a dict slot


class FieldScrubber(Protocol):
    """What the fields pass through before they are encoded (redaction.ScrubFilter)."""

    def scrub_field(self, name: str, value: Any) -> Any: ...


class FieldEncoder:
    """`, "name": value` for each field, scrubbed; whole fields remembered (module docstring)."""

    def __init__(self, encode: Callable[[Any], str]) -> None:
        """`encode`: the formatter's JSON encoder for any other value."""
        self._encode = encode
        self._names: dict[str, str] = {}
        self._texts: dict[tuple[str, Any], str] = {}  # (name, value) → its whole field text
        self._size = 0  # the bytes _texts holds (_remember)
        self._seen: set[int] = set()  # hashes of pairs met once (remembered the second time)
        self._scrubber: FieldScrubber | None = None  # the one the texts were made with

    def items(self, fields: dict[str, Any], scrubber: FieldScrubber) -> str | None:
        """The JSON text of `fields`' items as `scrubber` leaves them, each preceded by `", "`;
        None when a name is not a string (the encoder decides what that means)."""
        if scrubber is not self._scrubber:
            self._texts.clear()
            self._size = 0
            self._seen.clear()
            self._scrubber = scrubber
        try:
            # One C pass: a pair remembered is its text, any other None. Only str and tuples of
            # str were remembered, and a number, None or bytes never equals one of those.
            texts = list(map(self._texts.get, fields.items()))
        except TypeError:  # an unhashable value (a list, a dict): field by field
            texts = [None] * len(fields)
        missing = texts.count(None)
        if missing:
            names, index = list(fields), -1
            for _ in range(missing):
                index = texts.index(None, index + 1)
                name = names[index]
                if type(name) is not str:
                    return None
                texts[index] = self._field(name, fields[name], scrubber)
        return "".join(cast("list[str]", texts))  # no None left

    def _field(self, name: str, value: Any, scrubber: FieldScrubber) -> str:
        prefix = self._names.get(name)
        if prefix is None:
            prefix = self._name(name)
        scrubbed = scrubber.scrub_field(name, value)
        kind = type(scrubbed)
        if kind is str:
            text = prefix + encode_basestring_ascii(scrubbed)
            if (
                type(value) is str
                and len(value) <= _MAX_REMEMBERED_LENGTH
                and len(text) <= _MAX_REMEMBERED_TEXT
                and scrubbed == value
            ):
                # _remember's first half, inlined: every id of every line comes this way once.
                item = (name, value)
                key = hash(item)
                if key in self._seen:
                    self._remember(item, text)
                else:
                    if len(self._seen) >= _MAX_REMEMBERED:
                        self._seen.clear()
                    self._seen.add(key)
            return text
        if kind is int:  # not bool: the encoder writes an int as int.__repr__
            return prefix + int.__repr__(scrubbed)
        if kind is list and all(type(item) is str for item in scrubbed):
            text = f"{prefix}[{', '.join([encode_basestring_ascii(i) for i in scrubbed])}]"
            if len(text) <= _MAX_REMEMBERED_TEXT and _kept(value, scrubbed):
                self._remember((name, value), text)
            return text
        return prefix + self._encode(scrubbed)

    def _remember(self, item: tuple[str, Any], text: str) -> None:
        """Remember `text` for `item` if it was met before, else note that it was met. A hash
        collision only remembers a pair at its first meeting: the text is keyed by the pair."""
        key = hash(item)
        if key not in self._seen:
            if len(self._seen) >= _MAX_REMEMBERED:
                self._seen.clear()
            self._seen.add(key)
            return
        if item in self._texts:  # met again field by field (a line with an unhashable value)
            return
        value = item[1]
        size = _ENTRY_BYTES + getsizeof(text) + getsizeof(value)
        if type(value) is tuple:
            size += sum(map(getsizeof, value))
        if len(self._texts) >= _MAX_REMEMBERED or self._size + size > _MAX_REMEMBERED_BYTES:
            self._texts.clear()
            self._size = 0
        self._texts[item] = text
        self._size += size

    def _name(self, name: str) -> str:
        if len(self._names) >= _MAX_REMEMBERED:
            self._names.clear()
        prefix = self._names[name] = f", {encode_basestring_ascii(name)}: "
        return prefix


def _kept(value: Any, scrubbed: list[str]) -> bool:
    """Whether `value` is a short tuple of str, short all together, that the scrubber left as
    it was (a tuple comes back as the list of its items)."""
    return (
        type(value) is tuple
        and len(value) <= _MAX_REMEMBERED_ITEMS
        and all(type(item) is str for item in value)
        and sum(map(len, value)) <= _MAX_REMEMBERED_LENGTH
        and scrubbed == list(value)
    )
