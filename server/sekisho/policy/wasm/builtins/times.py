"""OPA's time.* builtins (topdown/time.go) for the Wasm host.

A time operand is a number of nanoseconds since the epoch or an array `[ns, tz]` /
`[ns, tz, layout]`; `tz` is "" or "UTC", "Local", or an IANA zone name. Dates are Go's proleptic
Gregorian calendar; `time.add_date` normalises overflowing months and days as Go's time.Date does.
"""

from datetime import UTC, datetime, tzinfo
from typing import Any

from sekisho.clock import Clock
from sekisho.policy.wasm.builtins.godate import add_date_wall
from sekisho.policy.wasm.builtins.gofloat import format_fixed
from sekisho.policy.wasm.builtins.gozone import load_location
from sekisho.policy.wasm.builtins.operands import int_operand, nanoseconds_operand
from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin
from sekisho.policy.wasm.builtins.timeformat import NAMED_LAYOUTS, Moment, format_time
from sekisho.policy.wasm.builtins.timelayout import parse_layout
from sekisho.policy.wasm.builtins.timeparse import (
    days_in,
    in_range,
    parse_duration,
    parse_rfc3339,
)

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_EXTENDED_HOURS = {"d": 24, "w": 7 * 24, "y": 365 * 24}
_TWO_LETTER_UNITS = ("ms", "us", "µs", "ns")
_WALL_LOW, _WALL_HIGH = -(2**63) // 10**9 - 2 * 86400, (2**63 - 1) // 10**9 + 2 * 86400


def _zone(name: Any) -> tzinfo:
    if not isinstance(name, str):
        raise BuiltinError("the time zone must be a string")
    return load_location(name)


def _operand(value: Any) -> tuple[int, tzinfo]:
    """(ns, zone) of a time operand (tzTime), a Rego value (rego_text): ns is read from the
    number's text as OPA's big.Float reads it."""
    if isinstance(value, list):
        if not value:
            raise BuiltinError("either number (ns) or [number (ns), string (tz)]")
        zone = _zone(value[1]) if len(value) > 1 else UTC
        if len(value) > 2 and not isinstance(value[2], str):
            raise BuiltinError("the layout must be a string")
        return nanoseconds_operand(value[0], "ns"), zone
    return nanoseconds_operand(value, "ns"), UTC


def _local(nanos: int, zone: tzinfo) -> datetime:
    """Wall-clock fields in `zone` (second precision; Go keeps the nanoseconds apart)."""
    return datetime.fromtimestamp(nanos // 10**9, UTC).astimezone(zone)


def _date(value: Any) -> list[int]:
    moment = _local(*_operand(value))
    return [moment.year, moment.month, moment.day]


def _clock(value: Any) -> list[int]:
    moment = _local(*_operand(value))
    return [moment.hour, moment.minute, moment.second]


def _weekday(value: Any) -> str:
    return _WEEKDAYS[_local(*_operand(value)).weekday()]


def _offset(zone: tzinfo, utc_seconds: int) -> int:
    offset = datetime.fromtimestamp(utc_seconds, UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _wall_to_unix(zone: tzinfo, wall_seconds: int) -> int:
    """Go's time.Date: look the offset up at the wall time taken as UTC, then at the result."""
    offset = _offset(zone, wall_seconds)
    second_guess = _offset(zone, wall_seconds - offset)
    return wall_seconds - (second_guess if second_guess != offset else offset)


def _add_date(value: Any, years: Any, months: Any, days: Any) -> int:
    """Time.AddDate in Go's wrapping int arithmetic (godate.py): a huge delta is undefined when
    the wrapped result is out of the int64 ns range, as in OPA, and a value when it lands in it."""
    nanos, zone = _operand(value)
    years, months, days = (int_operand(v, "time.add_date") for v in (years, months, days))
    moment = _local(nanos, zone)
    second_of_day = moment.hour * 3600 + moment.minute * 60 + moment.second
    date = (moment.year, moment.month, moment.day)
    wall = add_date_wall(date, second_of_day, (years, months, days))
    # A zone moves the wall time by less than a day: beyond that margin the result is out of
    # range whatever the offset (and out of what the zone database can be asked about).
    if not _WALL_LOW <= wall <= _WALL_HIGH:
        raise BuiltinError("time outside of valid range")
    return in_range(_wall_to_unix(zone, wall) * 10**9 + nanos % 10**9)


def _diff(first: Any, second: Any) -> list[int]:
    ns1, zone = _operand(first)
    ns2, _ = _operand(second)
    if ns1 > ns2:
        ns1, ns2 = ns2, ns1
    a, b = _local(ns1, zone), _local(ns2, zone)
    parts = [b.year - a.year, b.month - a.month, b.day - a.day]
    parts += [b.hour - a.hour, b.minute - a.minute, b.second - a.second]
    year, month, day, hour, minute, second = parts
    if second < 0:
        second, minute = second + 60, minute - 1
    if minute < 0:
        minute, hour = minute + 60, hour - 1
    if hour < 0:
        hour, day = hour + 24, day - 1
    if day < 0:
        day, month = day + days_in(a.month, a.year), month - 1
    if month < 0:
        month, year = month + 12, year - 1
    return [year, month, day, hour, minute, second]


def _format(value: Any) -> str:
    """builtinFormat: the layout is the operand's third element, a named layout or Go's
    layout text; none or "" is RFC3339Nano."""
    nanos, zone = _operand(value)
    layout = value[2] if isinstance(value, list) and len(value) > 2 else ""
    layout = NAMED_LAYOUTS.get(layout or "RFC3339Nano", layout)
    wall = _local(nanos, zone)
    offset = wall.utcoffset()
    seconds = int(offset.total_seconds()) if offset is not None else 0
    return format_time(Moment(wall, nanos % 10**9, seconds, wall.tzname() or ""), layout)


def _parse_ns(layout: Any, value: Any) -> int:
    """builtinTimeParseNanos: time.Parse with a Go layout or one of OPA's layout names."""
    if not isinstance(layout, str) or not isinstance(value, str):
        raise BuiltinError("time.parse_ns takes a layout and a value, both strings")
    return parse_layout(NAMED_LAYOUTS.get(layout, layout), value)


def _parse_rfc3339_ns(value: Any) -> int:
    if not isinstance(value, str):
        raise BuiltinError("operand must be a string")
    return parse_rfc3339(value)


def _parse_duration_ns(value: Any) -> int:
    """parseExtendedDuration: Go's ParseDuration plus d, w and y segments (rewritten to hours)."""
    if not isinstance(value, str) or not value:
        raise BuiltinError(f"time: invalid duration {value!r}")
    if not any(unit in value for unit in "dwy"):
        return parse_duration(value)
    return parse_duration(_rewrite_extended(value))


def _rewrite_extended(text: str) -> str:
    """durationparser: Sign? (Digits [0-9.]+ Unit ("ms"/"us"/"µs"/"ns"/[a-z]))+ EOF."""
    rest, out = text, []
    if rest[:1] in ("-", "+"):
        out.append(rest[0])
        rest = rest[1:]
    if not rest:
        raise BuiltinError(f"time: invalid duration {text!r}")
    while rest:
        end = 0
        while end < len(rest) and rest[end] in "0123456789.":
            end += 1
        digits, rest = rest[:end], rest[end:]
        unit = next((u for u in _TWO_LETTER_UNITS if rest.startswith(u)), rest[:1])
        if not digits or not unit or not ("a" <= unit[0] <= "z" or unit in _TWO_LETTER_UNITS):
            raise BuiltinError(f"time: invalid duration {text!r}")
        rest = rest[len(unit) :]
        out.append(_rewrite_segment(digits, unit, text))
    return "".join(out)


def _rewrite_segment(digits: str, unit: str, text: str) -> str:
    if unit not in _EXTENDED_HOURS:
        return digits + unit
    try:
        hours = float(digits) * _EXTENDED_HOURS[unit]
    except ValueError as exc:
        raise BuiltinError(f"time: invalid duration {text!r}") from exc
    return format_fixed(hours) + "h"


def time_builtins(clock: Clock) -> tuple[HostBuiltin, ...]:
    """The time.* host builtins. `time.now_ns` reads `clock`, the service's (the one input.now
    is taken from), once per evaluation (memoised): OPA reads its clock once per query."""

    def now_ns() -> int:
        return int(clock.now() * 1_000_000_000)

    return (
        HostBuiltin("time.now_ns", now_ns, per_evaluation=True),
        HostBuiltin("time.parse_rfc3339_ns", _parse_rfc3339_ns),
        HostBuiltin("time.parse_duration_ns", _parse_duration_ns),
        HostBuiltin("time.date", _date, rego_text=True),
        HostBuiltin("time.clock", _clock, rego_text=True),
        HostBuiltin("time.weekday", _weekday, rego_text=True),
        HostBuiltin("time.add_date", _add_date, rego_text=True),
        HostBuiltin("time.diff", _diff, rego_text=True),
        HostBuiltin("time.format", _format, rego_text=True),
        HostBuiltin("time.parse_ns", _parse_ns),
    )
