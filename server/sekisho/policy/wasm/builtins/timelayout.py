"""Go's time.Parse(layout, value) (src/time/format.go `parse`) for time.parse_ns: the layout
is cut into elements as time.format cuts it (timeformat.next_element) and the value read
element by element over its UTF-8 bytes, with Go's leniencies kept (one-digit numbers where
the layout has `1`/`2`/`3`/`4`/`5`/`15`, a fraction after the seconds even when the layout has
none, any run of spaces for a space, a sign where Go's atoi takes one, ...). Zones: gotimezone.
"""

from collections.abc import Callable
from dataclasses import dataclass

from sekisho.policy.wasm.builtins.gotimebytes import (
    TimeParseError,
    atoi,
    digit,
    getnum,
    getnum3,
    lookup,
)
from sekisho.policy.wasm.builtins.gotimezone import read_abbreviation, read_numeric_zone
from sekisho.policy.wasm.builtins.registry import BuiltinError
from sekisho.policy.wasm.builtins.timeformat import MONTHS, WEEKDAYS, next_element
from sekisho.policy.wasm.builtins.timeparse import days_from_civil, days_in, in_range

_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)
_LONG_MONTHS = tuple(m.encode() for m in MONTHS)
_SHORT_MONTHS = tuple(m[:3] for m in _LONG_MONTHS)
# Go's tables start at Sunday; only the match matters here.
_LONG_DAYS = tuple(d.encode() for d in WEEKDAYS)
_SHORT_DAYS = tuple(d[:3] for d in _LONG_DAYS)


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
    except TimeParseError as exc:
        raise BuiltinError(f"parsing time {value!r} as {layout!r}: cannot parse") from exc


def _read(layout: str, value: bytes) -> _Fields:
    fields = _Fields()
    while True:
        prefix, element, layout = next_element(layout)
        value = _skip(value, prefix.encode())
        if not element:
            if value:
                raise TimeParseError
            return fields
        value = _read_element(fields, element, value, layout)


def _read_element(fields: _Fields, element: str, value: bytes, layout: str) -> bytes:
    reader = _READERS.get(element)
    if reader is not None:
        return reader(fields, value)
    if element[0] in "Z-":
        return _read_zone(fields, element, value)
    if element == "MST":
        is_utc, value = read_abbreviation(value)
        fields.utc = fields.utc or is_utc  # Go sets z only to UTC, never back
        return value
    if element[0] in ".,":
        return _read_fraction(fields, element, value)
    return _read_clock(fields, element, value, layout)


def _skip(value: bytes, prefix: bytes) -> bytes:
    """Go's skip: the prefix literally, a space in it matching any run of spaces."""
    while prefix:
        if prefix[:1] == b" ":
            if value and value[:1] != b" ":
                raise TimeParseError
            prefix, value = prefix.lstrip(b" "), value.lstrip(b" ")
            continue
        if not value or value[0] != prefix[0]:
            raise TimeParseError
        prefix, value = prefix[1:], value[1:]
    return value


def _year2(fields: _Fields, value: bytes) -> bytes:
    if len(value) < 2:
        raise TimeParseError
    year = atoi(value[:2])
    fields.year = year + (1900 if year >= 69 else 2000)
    return value[2:]


def _year4(fields: _Fields, value: bytes) -> bytes:
    if len(value) < 4 or not digit(value, 0):
        raise TimeParseError
    fields.year = atoi(value[:4])
    return value[4:]


def _month_name(table: tuple[bytes, ...]) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        index, rest = lookup(table, value)
        fields.month = index + 1
        return rest

    return read


def _day_name(table: tuple[bytes, ...]) -> _Reader:
    def read(_fields: _Fields, value: bytes) -> bytes:
        return lookup(table, value)[1]  # checked, then ignored

    return read


def _month_number(fixed: bool) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        fields.month, rest = getnum(value, fixed)
        if not 1 <= fields.month <= 12:
            raise TimeParseError
        return rest

    return read


def _day(fixed: bool, under: bool) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        if under and value[:1] == b" ":
            value = value[1:]
        fields.day, rest = getnum(value, fixed)
        return rest

    return read


def _year_day(fixed: bool, under: bool) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        for _ in range(2):
            if under and value[:1] == b" ":
                value = value[1:]
        fields.yday, rest = getnum3(value, fixed)
        return rest

    return read


def _meridiem(am: bytes, pm: bytes) -> _Reader:
    def read(fields: _Fields, value: bytes) -> bytes:
        if len(value) < 2 or value[:2] not in (am, pm):
            raise TimeParseError
        fields.am, fields.pm = (True, fields.pm) if value[:2] == am else (fields.am, True)
        return value[2:]

    return read


def _read_clock(fields: _Fields, element: str, value: bytes, layout: str) -> bytes:
    """15 3 03 4 04 5 05; after the seconds, a fraction the layout does not mention."""
    number, rest = getnum(value, fixed=element.startswith("0"))
    limit = {"15": 23, "3": 12, "03": 12}.get(element, 59)
    if not 0 <= number <= limit:
        raise TimeParseError
    if element in ("15", "3", "03"):
        fields.hour = number
    elif element in ("4", "04"):
        fields.minute = number
    else:
        fields.second = number
        if len(rest) >= 2 and rest[:1] in (b".", b",") and digit(rest, 1):
            following = next_element(layout)[1]
            if not (following[:1] in (".", ",") and following[1:2] in ("0", "9")):
                end = 2
                while digit(rest, end):
                    end += 1
                fields.nanos, rest = _nanoseconds(rest, end), rest[end:]
    return rest


def _nanoseconds(value: bytes, length: int) -> int:
    """Go's parseNanoseconds over value[:length] (separator included; at most 9 digits)."""
    if value[:1] not in (b".", b","):
        raise TimeParseError
    length = min(length, 10)
    nanos = atoi(value[1:length])
    if nanos < 0:
        raise TimeParseError
    return int(nanos * 10 ** (10 - length))


def _read_fraction(fields: _Fields, element: str, value: bytes) -> bytes:
    if element[1] == "0":  # exactly as many digits as the layout
        if len(value) < len(element):
            raise TimeParseError
        fields.nanos = _nanoseconds(value, len(element))
        return value[len(element) :]
    if len(value) < 2 or value[:1] not in (b".", b",") or not digit(value, 1):
        return value  # the fraction is optional
    end = 1
    while digit(value, end + 1):
        end += 1
    fields.nanos = _nanoseconds(value, 1 + end)
    return value[1 + end :]


def _read_zone(fields: _Fields, element: str, value: bytes) -> bytes:
    if element[0] == "Z" and value[:1] == b"Z":
        fields.utc = True
        return value[1:]
    fields.offset, value = read_numeric_zone(element, value)
    return value


def _unix_nanos(fields: _Fields) -> int:
    hour = fields.hour
    if fields.pm and hour < 12:
        hour += 12
    elif fields.am and hour == 12:
        hour = 0
    month, day = _calendar_day(fields)
    if not 1 <= day <= days_in(month, fields.year):
        raise TimeParseError
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
        raise TimeParseError
    if month == 0:
        month = (yday - 1) // 31 + 1
        if _DAYS_BEFORE[month] < yday:
            month += 1
        day = yday - _DAYS_BEFORE[month - 1]
    if (fields.month >= 0 and fields.month != month) or (fields.day >= 0 and fields.day != day):
        raise TimeParseError
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
}
