"""Go's time.Parse(layout, value) (src/time/format.go `parse`) for time.parse_ns: the layout
is cut into elements as time.format cuts it (timeformat.next_element) and the value read
element by element over its UTF-8 bytes, with Go's leniencies kept (one-digit numbers where
the layout has `1`/`2`/`3`/`4`/`5`/`15`, a fraction after the seconds even when the layout has
none, any run of spaces for a space, a sign where Go's atoi takes one, ...).

Zone abbreviations (`MST`) are looked up by Go in the process's local zone. Only a local zone
of UTC is reproduced (then `UTC` is UTC and any other abbreviation, `GMT+3` included, leaves
the wall time read as UTC, as Go's fabricated zone does); on a host whose local zone is not UTC
a value that carries an abbreviation raises TimeLayoutUnsupportedError, which traps the
evaluation (a deny).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

from sekisho.policy.wasm.builtins.registry import BuiltinError
from sekisho.policy.wasm.builtins.timeformat import MONTHS, WEEKDAYS, next_element
from sekisho.policy.wasm.builtins.timeparse import days_from_civil, days_in, in_range

_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)
_LONG_MONTHS = tuple(m.encode() for m in MONTHS)
_SHORT_MONTHS = tuple(m[:3] for m in _LONG_MONTHS)
# Go's tables start at Sunday; only the match matters here.
_LONG_DAYS = tuple(d.encode() for d in WEEKDAYS)
_SHORT_DAYS = tuple(d[:3] for d in _LONG_DAYS)


class TimeLayoutUnsupportedError(Exception):
    """A value Go would read against the host's local zone, which is not UTC here."""


class _Bad(Exception):
    """Go's errBad / a range error: time.Parse fails (OPA: undefined)."""


@dataclass
class _Fields:
    year: int = 0
    month: int = -1
    day: int = -1
    yday: int = -1
    hour: int = 0
    minute: int = 0
    second: int = 0
    nanos: int = 0
    utc: bool = False  # `Z` or `UTC` (Go's z = UTC: wins over any offset)
    offset: int | None = None  # seconds east of UTC of a numeric zone
    am: bool = False
    pm: bool = False


_Reader = Callable[[_Fields, bytes], bytes]


def parse_layout(layout: str, value: str) -> int:
    """Unix nanoseconds of time.Parse(layout, value). Raises: BuiltinError,
    TimeLayoutUnsupportedError."""
    try:
        fields = _read(layout, value.encode())
        return in_range(_unix_nanos(fields))
    except _Bad as exc:
        raise BuiltinError(f"parsing time {value!r} as {layout!r}: cannot parse") from exc


def _read(layout: str, value: bytes) -> _Fields:
    fields = _Fields()
    while True:
        prefix, element, layout = next_element(layout)
        value = _skip(value, prefix.encode())
        if not element:
            if value:
                raise _Bad
            return fields
        value = _read_element(fields, element, value, layout)


def _read_element(fields: _Fields, element: str, value: bytes, layout: str) -> bytes:
    reader = _READERS.get(element)
    if reader is not None:
        return reader(fields, value)
    if element[0] in "Z-":
        return _read_zone(fields, element, value)
    if element[0] in ".,":
        return _read_fraction(fields, element, value)
    return _read_clock(fields, element, value, layout)


def _skip(value: bytes, prefix: bytes) -> bytes:
    """Go's skip: the prefix literally, a space in it matching any run of spaces."""
    while prefix:
        if prefix[:1] == b" ":
            if value and value[:1] != b" ":
                raise _Bad
            prefix, value = prefix.lstrip(b" "), value.lstrip(b" ")
            continue
        if not value or value[0] != prefix[0]:
            raise _Bad
        prefix, value = prefix[1:], value[1:]
    return value


def _digit(value: bytes, index: int) -> bool:
    return index < len(value) and 0x30 <= value[index] <= 0x39


def _getnum(value: bytes, fixed: bool) -> tuple[int, bytes]:
    """Go's getnum: two digits, or one when the layout's element is not zero-padded."""
    if not _digit(value, 0):
        raise _Bad
    if not _digit(value, 1):
        if fixed:
            raise _Bad
        return value[0] - 0x30, value[1:]
    return (value[0] - 0x30) * 10 + value[1] - 0x30, value[2:]


def _getnum3(value: bytes, fixed: bool) -> tuple[int, bytes]:
    count = 0
    while count < 3 and _digit(value, count):
        count += 1
    if count == 0 or (fixed and count != 3):
        raise _Bad
    return int(value[:count]), value[count:]


def _leading_int(value: bytes) -> tuple[int, bytes]:
    count = 0
    while _digit(value, count):
        count += 1
    number = int(value[:count]) if count else 0
    if number > 1 << 63:
        raise _Bad
    return number, value[count:]


def _atoi(value: bytes) -> int:
    """Go's time.atoi: an optional sign, then only digits (none is 0)."""
    negative = value[:1] == b"-"
    number, rest = _leading_int(value[1:] if value[:1] in (b"-", b"+") else value)
    if rest:
        raise _Bad
    return -number if negative else number


def _lookup(table: tuple[bytes, ...], value: bytes) -> tuple[int, bytes]:
    """Go's lookup: the first name the value starts with, ASCII letters case-insensitive."""
    for index, name in enumerate(table):
        if len(value) >= len(name) and _match(value[: len(name)], name):
            return index, value[len(name) :]
    raise _Bad


def _match(left: bytes, right: bytes) -> bool:
    for a, b in zip(left, right, strict=True):
        if a != b and ((a | 0x20) != (b | 0x20) or not 0x61 <= (a | 0x20) <= 0x7A):
            return False
    return True


def _year2(fields: _Fields, value: bytes) -> bytes:
    if len(value) < 2:
        raise _Bad
    year = _atoi(value[:2])
    fields.year = year + (1900 if year >= 69 else 2000)
    return value[2:]


def _year4(fields: _Fields, value: bytes) -> bytes:
    if len(value) < 4 or not _digit(value, 0):
        raise _Bad
    fields.year = _atoi(value[:4])
    return value[4:]


def _month_name(table: tuple[bytes, ...]) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        index, rest = _lookup(table, value)
        fields.month = index + 1
        return rest

    return read


def _day_name(table: tuple[bytes, ...]) -> _Reader:
    def read(_fields: _Fields, value: bytes) -> bytes:
        return _lookup(table, value)[1]  # checked, then ignored

    return read


def _month_number(fixed: bool) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        fields.month, rest = _getnum(value, fixed)
        if not 1 <= fields.month <= 12:
            raise _Bad
        return rest

    return read


def _day(fixed: bool, under: bool) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        if under and value[:1] == b" ":
            value = value[1:]
        fields.day, rest = _getnum(value, fixed)
        return rest

    return read


def _year_day(fixed: bool, under: bool) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        for _ in range(2):
            if under and value[:1] == b" ":
                value = value[1:]
        fields.yday, rest = _getnum3(value, fixed)
        return rest

    return read


def _meridiem(am: bytes, pm: bytes) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        if len(value) < 2 or value[:2] not in (am, pm):
            raise _Bad
        fields.am, fields.pm = (True, fields.pm) if value[:2] == am else (fields.am, True)
        return value[2:]

    return read


def _read_clock(fields: _Fields, element: str, value: bytes, layout: str) -> bytes:
    """15 3 03 4 04 5 05; after the seconds, a fraction the layout does not mention."""
    number, rest = _getnum(value, fixed=element.startswith("0"))
    limit = {"15": 23, "3": 12, "03": 12}.get(element, 59)
    if not 0 <= number <= limit:
        raise _Bad
    if element in ("15", "3", "03"):
        fields.hour = number
    elif element in ("4", "04"):
        fields.minute = number
    else:
        fields.second = number
        if len(rest) >= 2 and rest[:1] in (b".", b",") and _digit(rest, 1):
            following = next_element(layout)[1]
            if not (following[:1] in (".", ",") and following[1:2] in ("0", "9")):
                end = 2
                while _digit(rest, end):
                    end += 1
                fields.nanos, rest = _nanoseconds(rest, end), rest[end:]
    return rest


def _nanoseconds(value: bytes, length: int) -> int:
    """Go's parseNanoseconds over value[:length] (separator included; at most 9 digits)."""
    if value[:1] not in (b".", b","):
        raise _Bad
    length = min(length, 10)
    nanos = _atoi(value[1:length])
    if nanos < 0:
        raise _Bad
    return int(nanos * 10 ** (10 - length))


def _read_fraction(fields: _Fields, element: str, value: bytes) -> bytes:
    if element[1] == "0":  # exactly as many digits as the layout
        if len(value) < len(element):
            raise _Bad
        fields.nanos = _nanoseconds(value, len(element))
        return value[len(element) :]
    if len(value) < 2 or value[:1] not in (b".", b",") or not _digit(value, 1):
        return value  # the fraction is optional
    end = 1
    while _digit(value, end + 1):
        end += 1
    fields.nanos = _nanoseconds(value, 1 + end)
    return value[1 + end :]


def _read_zone(fields: _Fields, element: str, value: bytes) -> bytes:
    if element[0] == "Z" and value[:1] == b"Z":
        fields.utc = True
        return value[1:]
    shape = element[1:]
    length = 1 + len(shape)
    if len(value) < length:
        raise _Bad
    chunk = value[:length]
    colons = [i for i, c in enumerate(shape, start=1) if c == ":"]
    if any(chunk[i : i + 1] != b":" for i in colons):
        raise _Bad
    digits = bytes(c for i, c in enumerate(chunk[1:], start=1) if i not in colons)
    parts = [digits[i : i + 2] for i in range(0, len(digits), 2)] + [b"00", b"00"]
    hours, minutes, seconds = (_getnum(part, fixed=True)[0] for part in parts[:3])
    if hours > 24 or minutes > 60 or seconds > 60 or chunk[:1] not in (b"+", b"-"):
        raise _Bad
    offset = (hours * 60 + minutes) * 60 + seconds
    fields.offset = -offset if chunk[:1] == b"-" else offset
    return value[length:]


def _read_abbreviation(fields: _Fields, value: bytes) -> bytes:
    """MST: `UTC`, else a name as Go's parseTimeZone takes it, which changes nothing when the
    local zone is UTC (_offset)."""
    if value[:3] == b"UTC":
        fields.utc = True
        return value[3:]
    length = _zone_name_length(value)
    if length == 0:
        raise _Bad
    if not _local_is_utc():
        raise TimeLayoutUnsupportedError(
            "time.parse_ns: zone abbreviations are read in the host's local zone, not UTC here"
        )
    return value[length:]


def _zone_name_length(value: bytes) -> int:
    """Go's parseTimeZone: the length of a zone abbreviation at the start of value, or 0."""
    if len(value) < 3:
        return 0
    if value[:4] in (b"ChST", b"MeST"):
        return 4
    if value[:3] == b"GMT":
        return 3 + _signed_offset_length(value[3:]) if len(value) > 3 else 3
    if value[:1] in (b"+", b"-"):
        return _signed_offset_length(value)
    return _upper_case_length(value)


def _upper_case_length(value: bytes) -> int:
    """Three upper-case letters, or four or five ending in T (and WITA)."""
    upper = 0
    while upper < min(6, len(value)) and 0x41 <= value[upper] <= 0x5A:
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (value[3:4] == b"T" or value[:4] == b"WITA"):
        return 4
    return 5 if upper == 5 and value[4:5] == b"T" else 0


def _signed_offset_length(value: bytes) -> int:
    if value[:1] not in (b"+", b"-"):
        return 0
    try:
        number, rest = _leading_int(value[1:])
    except _Bad:
        return 0
    return 0 if rest == value[1:] or number > 12 else len(value) - len(rest)


def _local_is_utc() -> bool:
    return time.timezone == 0 and time.altzone == 0 and not time.daylight


def _unix_nanos(fields: _Fields) -> int:
    hour = fields.hour
    if fields.pm and hour < 12:
        hour += 12
    elif fields.am and hour == 12:
        hour = 0
    month, day = _calendar_day(fields)
    if not 1 <= day <= days_in(month, fields.year):
        raise _Bad
    days = days_from_civil(fields.year, month, day)
    seconds = days * 86400 + hour * 3600 + fields.minute * 60 + fields.second
    return (seconds - _offset(fields)) * 10**9 + fields.nanos


def _offset(fields: _Fields) -> int:
    """Go's order: z (UTC), then a numeric offset. An abbreviation Go does not find in the
    local zone only names a fabricated zone (FixedZone, set without moving the instant): the
    wall time is read as UTC, whatever the name (GMT+3 included)."""
    if fields.utc:
        return 0
    return fields.offset or 0


def _calendar_day(fields: _Fields) -> tuple[int, int]:
    """(month, day): from the year day when the value gave one (it must agree with any month
    and day also given), else the parsed ones, January and 1 by default."""
    if fields.yday < 0:
        return (fields.month if fields.month >= 0 else 1), (fields.day if fields.day >= 0 else 1)
    yday, month, day = fields.yday, 0, 0
    leap = days_in(2, fields.year) == 29
    if leap and yday == 31 + 29:
        month, day = 2, 29
    elif leap and yday > 31 + 29:
        yday -= 1
    if not 1 <= yday <= 365:
        raise _Bad
    if month == 0:
        month = (yday - 1) // 31 + 1
        if _DAYS_BEFORE[month] < yday:
            month += 1
        day = yday - _DAYS_BEFORE[month - 1]
    if (fields.month >= 0 and fields.month != month) or (fields.day >= 0 and fields.day != day):
        raise _Bad
    return month, day


_READERS: dict[str, _Reader] = {
    "2006": _year4,
    "06": _year2,
    "January": _month_name(_LONG_MONTHS),
    "Jan": _month_name(_SHORT_MONTHS),
    "1": _month_number(fixed=False),
    "01": _month_number(fixed=True),
    "Monday": _day_name(_LONG_DAYS),
    "Mon": _day_name(_SHORT_DAYS),
    "2": _day(fixed=False, under=False),
    "_2": _day(fixed=False, under=True),
    "02": _day(fixed=True, under=False),
    "__2": _year_day(fixed=False, under=True),
    "002": _year_day(fixed=True, under=False),
    "PM": _meridiem(b"AM", b"PM"),
    "pm": _meridiem(b"am", b"pm"),
    "MST": _read_abbreviation,
}
