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

A line whose fields are mostly the same from line to line (the audit line: the same caller,
issuer, audience, scopes, resources, token type and kid line after line; only its ids, `exp` and
the time change) may also name its `fresh` fields (`items_of_line`): then the text *between* the
fresh fields is remembered whole, per (names, the other fields' values), under the same rules as a
field text (met twice, every value a str or a tuple of str that the scrubber left as it was,
bounded in entries and bytes), and a line is that text with each fresh field scrubbed
and encoded into its place: one lookup for the ~15 repeated fields instead of one per field
(bench/results/audit_session15.md).
"""

from _json import encode_basestring_ascii
from collections.abc import Callable
from operator import itemgetter
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


# The texts between fresh fields (items_of_line), a budget of their own: a line's holds its ~15
# values and ~1 KB of text (~2 KB all told), and one per (caller, audience, scopes, resources)
# met must fit for the memory to work at all (1,000 downstreams in bench/stack.py).
_MAX_LINES = 4096
_MAX_LINES_BYTES = 4 * 1024 * 1024
_MAX_SHAPES = 256  # (names, fresh names) of the lines met: a few per event kind


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
        self._shapes: dict[tuple[tuple[Any, ...], frozenset[str]], _Shape | None] = {}
        # (shape, the other fields' values) → the texts between the fresh fields
        self._lines: dict[tuple[_Shape, Any], list[str]] = {}
        self._lines_size = 0  # the bytes _lines holds (_remember_line)
        self._last_shape: tuple[tuple[Any, ...], frozenset[str], _Shape | None] = (
            (),
            frozenset(),
            None,
        )

    def items(self, fields: dict[str, Any], scrubber: FieldScrubber) -> str | None:
        """The JSON text of `fields`' items as `scrubber` leaves them, each preceded by `", "`;
        None when a name is not a string (the encoder decides what that means)."""
        self._use(scrubber)
        return self._items(fields, scrubber)

    def items_of_line(
        self, fields: dict[str, Any], scrubber: FieldScrubber, fresh: frozenset[str]
    ) -> str | None:
        """`items(fields, scrubber)`, the same text, for a line whose `fresh` fields change from
        line to line and whose others mostly repeat: the text between the fresh fields is
        remembered whole (module docstring); each fresh field is scrubbed and encoded every time."""
        self._use(scrubber)
        names = tuple(fields)
        last_names, last_fresh, shape = self._last_shape
        # The same names as the last line (an audit line after an audit line): one comparison of
        # interned names, each by identity, instead of hashing them all.
        if names != last_names or fresh is not last_fresh:
            try:
                shape = self._shapes[names, fresh]
            except KeyError:
                shape = self._shape(names, fresh)
            self._last_shape = (names, fresh, shape)
        if shape is None:  # nothing fresh, or a name that is not a string
            return self._items(fields, scrubber)
        values = tuple(fields.values())
        key = (shape, shape.others(values))
        try:
            between = self._lines.get(key)
        except TypeError:  # an unhashable value (a list, a dict)
            return self._items(fields, scrubber)
        if between is None:
            between = self._between(shape, values, key, scrubber)
        parts = between[:]  # [text before the first fresh field, "", text after it, "", …]
        scrub = scrubber.scrub_field
        # Each fresh field, the text _field gives it (str, int, else the encoder), inlined
        # rather than called: it runs for every fresh field of every line.
        for slot, position, name, prefix in shape.fresh:
            scrubbed = scrub(name, values[position])
            kind = type(scrubbed)
            if kind is str:
                parts[slot] = prefix + encode_basestring_ascii(scrubbed)
            elif kind is int:  # not bool: the encoder writes an int as int.__repr__
                parts[slot] = prefix + int.__repr__(scrubbed)
            else:
                parts[slot] = prefix + self._encode(scrubbed)
        return "".join(parts)

    def _use(self, scrubber: FieldScrubber) -> None:
        if scrubber is not self._scrubber:
            self._texts.clear()
            self._size = 0
            self._lines.clear()
            self._lines_size = 0
            self._seen.clear()
            self._scrubber = scrubber

    def _items(self, fields: dict[str, Any], scrubber: FieldScrubber) -> str | None:
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

    def _shape(self, names: tuple[Any, ...], fresh: frozenset[str]) -> "_Shape | None":
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        shape = None
        if all(type(name) is str for name in names) and any(n in fresh for n in names):
            shape = _Shape(names, fresh, self)
        self._shapes[names, fresh] = shape
        return shape

    def _between(
        self,
        shape: "_Shape",
        values: tuple[Any, ...],
        key: tuple["_Shape", Any],
        scrubber: FieldScrubber,
    ) -> list[str]:
        """The texts between the fresh fields (each field's text as `_items` makes it), and
        remembered when every other value may be (`_keepable`) and the line was met before."""
        between: list[str] = []
        run: list[str] = []
        keep = True
        for position, name in enumerate(shape.names):
            if position in shape.fresh_positions:
                between += ("".join(run), "")
                run = []
                continue
            value = values[position]
            text = self._texts.get((name, value)) if type(value) in (str, tuple) else None
            if text is None:
                text = self._field(name, value, scrubber)
                keep = keep and _keepable(value, text, self._names[name])
            run.append(text)
        between.append("".join(run))
        if keep:
            self._remember_line(key, between)
        return between

    def _remember_line(self, key: tuple["_Shape", Any], between: list[str]) -> None:
        """As `_remember`, for the texts between a line's fresh fields."""
        if self._first_meeting(hash(key)):
            return
        others = key[1]
        size = _ENTRY_BYTES + sum(map(getsizeof, between)) + getsizeof(others)
        size += sum(map(getsizeof, others))
        size += sum(sum(map(getsizeof, v)) for v in others if type(v) is tuple)
        if len(self._lines) >= _MAX_LINES or self._lines_size + size > _MAX_LINES_BYTES:
            self._lines.clear()
            self._lines_size = 0
        self._lines[key] = between
        self._lines_size += size

    def _first_meeting(self, marker: int) -> bool:
        """Whether `marker` (a pair's or a line's hash) is met for the first time; then it is
        noted (at most _MAX_REMEMBERED markers), and its text is remembered at the next."""
        if marker in self._seen:
            return False
        if len(self._seen) >= _MAX_REMEMBERED:
            self._seen.clear()
        self._seen.add(marker)
        return True

    def _remember(self, item: tuple[str, Any], text: str) -> None:
        """Remember `text` for `item` if it was met before, else note that it was met. A hash
        collision only remembers a pair at its first meeting: the text is keyed by the pair."""
        if self._first_meeting(hash(item)):
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


class _Shape:
    """The names of a line's fields in order, which of them are fresh, and how to pick the others'
    values out of the line's values. Compared by identity: one per (names, fresh) met."""

    def __init__(
        self, names: tuple[str, ...], fresh: frozenset[str], encoder: FieldEncoder
    ) -> None:
        self.names = names
        self.fresh_positions = frozenset(i for i, name in enumerate(names) if name in fresh)
        # (slot in the line's parts, position, name, `, "name": `) of each fresh field, in order
        self.fresh = tuple(
            (2 * slot + 1, i, name, encoder._names.get(name) or encoder._name(name))
            for slot, (i, name) in enumerate(
                (i, name) for i, name in enumerate(names) if i in self.fresh_positions
            )
        )
        others = [i for i in range(len(names)) if i not in self.fresh_positions]
        # itemgetter of one index gives the value itself, of none a TypeError: always a tuple
        self.others: Callable[[tuple[Any, ...]], Any] = (
            itemgetter(*others, *others) if len(others) == 1 else
            itemgetter(*others) if others else (lambda values: ())
        )  # fmt: skip


def _keepable(value: Any, text: str, prefix: str) -> bool:
    """Whether a field's text may be remembered as part of a line: the value is a short str or
    tuple of str that the scrubber left as it was (as `_remember`'s). Never a number or None: a
    line with True, 1 or 1.0 there would find the same key (they are equal), not the same text."""
    kind = type(value)
    if kind is str:
        return (
            len(value) <= _MAX_REMEMBERED_LENGTH
            and len(text) <= _MAX_REMEMBERED_TEXT
            and text == prefix + encode_basestring_ascii(value)
        )
    if kind is tuple:
        kept = [item for item in value if type(item) is str]
        return (
            len(kept) == len(value)
            and len(text) <= _MAX_REMEMBERED_TEXT
            and _kept(value, kept)
            and text == f"{prefix}[{', '.join(map(encode_basestring_ascii, value))}]"
        )
    return False
