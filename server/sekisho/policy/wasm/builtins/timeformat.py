"""Go's Time.Format (src/time/format.go: nextStdChunk, appendFormat, appendNano) for
time.format: a layout is literal text around the elements of the reference time
"Mon Jan 2 15:04:05 MST 2006", recognised exactly where Go recognises them (`Jan` not before a
lower-case letter, `_2006` as `_` then the year, `.000`/`,999` only when no digit follows ...).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# The named layouts OPA accepts in place of a layout (topdown/time.go acceptedTimeFormats).
NAMED_LAYOUTS = {
    "ANSIC": "Mon Jan _2 15:04:05 2006",
    "UnixDate": "Mon Jan _2 15:04:05 MST 2006",
    "RubyDate": "Mon Jan 02 15:04:05 -0700 2006",
    "RFC822": "02 Jan 06 15:04 MST",
    "RFC822Z": "02 Jan 06 15:04 -0700",
    "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
    "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "RFC3339": "2006-01-02T15:04:05Z07:00",
    "RFC3339Nano": "2006-01-02T15:04:05.999999999Z07:00",
}
# Longest first where one element is a prefix of another (nextStdChunk's order).
_ZONE_ELEMENTS = ("070000", "07:00:00", "0700", "07:00", "07")


@dataclass(frozen=True, slots=True)
class Moment:
    """A time's wall-clock fields in its zone, as Go's Time carries them."""

    wall: datetime  # second precision, in the zone
    nanosecond: int
    offset_seconds: int
    zone_name: str


def _num(value: int, width: int) -> str:
    """Go's appendInt: a sign, then the digits zero-padded to `width`."""
    return ("-" if value < 0 else "") + str(abs(value)).zfill(width)


def _hour12(m: Moment) -> int:
    return m.wall.hour % 12 or 12


_ELEMENTS: dict[str, Callable[[Moment], str]] = {
    "2006": lambda m: _num(m.wall.year, 4),
    "06": lambda m: _num(m.wall.year % 100, 2),
    "January": lambda m: MONTHS[m.wall.month - 1],
    "Jan": lambda m: MONTHS[m.wall.month - 1][:3],
    "1": lambda m: str(m.wall.month),
    "01": lambda m: _num(m.wall.month, 2),
    "Monday": lambda m: WEEKDAYS[m.wall.weekday()],
    "Mon": lambda m: WEEKDAYS[m.wall.weekday()][:3],
    "2": lambda m: str(m.wall.day),
    "_2": lambda m: f"{m.wall.day:>2}",
    "02": lambda m: _num(m.wall.day, 2),
    "__2": lambda m: f"{m.wall.timetuple().tm_yday:>3}",
    "002": lambda m: _num(m.wall.timetuple().tm_yday, 3),
    "15": lambda m: _num(m.wall.hour, 2),
    "3": lambda m: str(_hour12(m)),
    "03": lambda m: _num(_hour12(m), 2),
    "4": lambda m: str(m.wall.minute),
    "04": lambda m: _num(m.wall.minute, 2),
    "5": lambda m: str(m.wall.second),
    "05": lambda m: _num(m.wall.second, 2),
    "PM": lambda m: "PM" if m.wall.hour >= 12 else "AM",
    "pm": lambda m: "pm" if m.wall.hour >= 12 else "am",
    "MST": lambda m: m.zone_name or _numeric_zone(m.offset_seconds, "0700"),
}


def format_time(moment: Moment, layout: str) -> str:
    """Go's t.Format(layout)."""
    out, rest = [], layout
    while rest:
        prefix, element, rest = next_element(rest)
        out.append(prefix)
        if element:
            out.append(_render(moment, element))
    return "".join(out)


def _render(moment: Moment, element: str) -> str:
    if element[0] in ".,":
        return _fraction(moment.nanosecond, element)
    if element[0] in "-Z":
        iso = element[0] == "Z"
        if iso and moment.offset_seconds == 0:
            return "Z"
        return _numeric_zone(moment.offset_seconds, element[1:])
    return _ELEMENTS[element](moment)


def _numeric_zone(offset: int, shape: str) -> str:
    """-0700 and its variants: sign, hours, minutes unless `07`, seconds for the 6-digit ones."""
    sign = "-" if offset < 0 else "+"
    minutes, seconds = divmod(abs(offset), 60)
    colon = ":" if ":" in shape else ""
    text = sign + _num(minutes // 60, 2)
    if shape != "07":
        text += colon + _num(minutes % 60, 2)
    if shape in ("070000", "07:00:00"):
        text += colon + _num(seconds, 2)
    return text


def _fraction(nanosecond: int, element: str) -> str:
    """Go's appendNano: `.000` keeps n digits; `.999` trims trailing zeros (and a bare dot)."""
    separator, digits = element[0], min(len(element) - 1, 9)
    text = f"{nanosecond:09d}"[:digits]
    if element[1] == "9":
        if nanosecond == 0:
            return ""
        text = text.rstrip("0")
        return separator + text if text else ""
    return separator + text


def next_element(layout: str) -> tuple[str, str, str]:
    """Go's nextStdChunk: (literal prefix, element or "", rest)."""
    for i, char in enumerate(layout):
        found = _element_at(layout, i, char)
        if found is not None:
            start, length = found
            return layout[:start], layout[start : start + length], layout[start + length :]
    return layout, "", ""


def _element_at(layout: str, i: int, char: str) -> tuple[int, int] | None:
    """(start, length) of an element beginning at `i` (start is i+1 for `_2006`)."""
    rest = layout[i:]
    if rest.startswith("_2006"):
        return i + 1, 4  # a literal `_`, then the year
    if char in "JMPp":
        length = _word_element(rest)
    elif char in "-Z":
        shape = next((s for s in _ZONE_ELEMENTS if rest[1:].startswith(s)), "")
        length = 1 + len(shape) if shape else 0
    elif char in ".,":
        length = _fraction_element(rest)
    else:
        length = _number_element(rest)
    return (i, length) if length else None


def _word_element(rest: str) -> int:
    """January, Jan, Monday, Mon, MST, PM, pm: `Jan`/`Mon` not before a lower-case letter."""
    for word in ("January", "Monday"):
        if rest.startswith(word):
            return len(word)
    if rest.startswith(("Jan", "Mon")) and not _lower_first(rest[3:]):
        return 3
    return next((len(w) for w in ("MST", "PM", "pm") if rest.startswith(w)), 0)


def _number_element(rest: str) -> int:
    """2006, 15, 002, __2, 01-06, _2 and the one-digit 1-5 (`0` and `_` alone are text)."""
    for element in ("2006", "15", "002", "__2"):
        if rest.startswith(element):
            return len(element)
    if rest[0] == "0":
        return 2 if "1" <= rest[1:2] <= "6" else 0
    if rest[0] == "_":
        return 2 if rest[1:2] == "2" else 0
    return 1 if rest[0] in "12345" else 0


def _fraction_element(rest: str) -> int:
    """`.` or `,` and a run of `0` or `9`, only when no digit follows the run."""
    if rest[1:2] not in ("0", "9"):
        return 0
    run = len(rest) - 1 - len(rest[1:].lstrip(rest[1]))
    after = rest[1 + run : 2 + run]
    return 0 if after.isdigit() and after.isascii() else 1 + run


def _lower_first(text: str) -> bool:
    return text[:1].isascii() and text[:1].islower()
