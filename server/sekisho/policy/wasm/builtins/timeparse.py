"""Go's time.ParseDuration and time.Parse(time.RFC3339, …), as OPA's time builtins call them.

time.Parse tries a strict RFC 3339 reader first and falls back to the general layout parser, which
accepts more (a one-digit hour, a ',' before fractional seconds, a zone offset hour of 24); the
fallback accepts everything the strict reader does with the same result, so only it is ported
(Go src/time/format.go `parse` for the layout "2006-01-02T15:04:05Z07:00").
"""

from sekisho.policy.wasm.builtins.registry import BuiltinError

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9}
_UNITS |= {"m": 60 * 10**9, "h": 3600 * 10**9}
_LIMIT = 1 << 63


def parse_duration(text: str) -> int:
    """time.ParseDuration. Raises: BuiltinError."""
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise BuiltinError(f"time: invalid duration {text!r}")
    total = 0
    while rest:
        value, rest = _duration_segment(rest, text)
        total += value
        if total > _LIMIT:
            raise BuiltinError(f"time: invalid duration {text!r}")
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise BuiltinError(f"time: invalid duration {text!r}")
    return total


def _duration_segment(rest: str, text: str) -> tuple[int, str]:
    if not _number_char(rest[0]):
        raise BuiltinError(f"time: invalid duration {text!r}")
    whole, rest, had_whole = _leading_int(rest, text)
    fraction, scale, had_fraction = 0, 1.0, False
    if rest[:1] == ".":
        fraction, scale, rest, had_fraction = _leading_fraction(rest[1:])
    if not had_whole and not had_fraction:
        raise BuiltinError(f"time: invalid duration {text!r}")
    end = 0
    while end < len(rest) and not _number_char(rest[end]):
        end += 1
    unit = _UNITS.get(rest[:end])
    if unit is None:
        raise BuiltinError(f"time: unknown unit {rest[:end]!r} in duration {text!r}")
    if whole > _LIMIT // unit:
        raise BuiltinError(f"time: invalid duration {text!r}")
    value = whole * unit
    if fraction > 0:
        value += int(float(fraction) * (float(unit) / scale))  # Go's float64 step, truncated
        if value > _LIMIT:
            raise BuiltinError(f"time: invalid duration {text!r}")
    return value, rest[end:]


def _number_char(char: str) -> bool:
    return char == "." or "0" <= char <= "9"


def _leading_int(rest: str, text: str) -> tuple[int, str, bool]:
    value, index = 0, 0
    while index < len(rest) and "0" <= rest[index] <= "9":
        if value > _LIMIT // 10:
            raise BuiltinError(f"time: invalid duration {text!r}")
        value = value * 10 + int(rest[index])
        if value > _LIMIT:
            raise BuiltinError(f"time: invalid duration {text!r}")
        index += 1
    return value, rest[index:], index > 0


def _leading_fraction(rest: str) -> tuple[int, float, str, bool]:
    value, scale, index, overflow = 0, 1.0, 0, False
    while index < len(rest) and "0" <= rest[index] <= "9":
        if not overflow:
            if value > (_LIMIT - 1) // 10:
                overflow = True
            else:
                value, scale = value * 10 + int(rest[index]), scale * 10
        index += 1
    return value, scale, rest[index:], index > 0


def parse_rfc3339(text: str) -> int:
    """Unix nanoseconds of time.Parse(time.RFC3339, text). Raises: BuiltinError."""
    reader = _Reader(text)
    year = reader.fixed_digits(4)
    reader.literal("-")
    month = reader.number(fixed=True)
    reader.literal("-")
    day = reader.number(fixed=True)
    reader.literal("T")
    hour = reader.number(fixed=False)
    reader.literal(":")
    minute = reader.number(fixed=True)
    reader.literal(":")
    second = reader.number(fixed=True)
    nanos = reader.fraction()
    offset = reader.zone()
    if reader.rest:
        raise BuiltinError(f"parsing time {text!r}: extra text")
    if not (1 <= month <= 12 and 0 <= hour < 24 and minute < 60 and second < 60):
        raise BuiltinError(f"parsing time {text!r}: out of range")
    if not 1 <= day <= days_in(month, year):
        raise BuiltinError(f"parsing time {text!r}: day out of range")
    seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return in_range((seconds - offset) * 10**9 + nanos)


def days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date, any year (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


def in_range(nanos: int) -> int:
    """OPA's toSafeUnixNano. Raises: BuiltinError."""
    if not -_LIMIT <= nanos < _LIMIT:
        raise BuiltinError("time outside of valid range")
    return nanos


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.rest = text

    def fail(self) -> BuiltinError:
        return BuiltinError(f"parsing time {self.text!r}: cannot parse")

    def digit(self, index: int) -> bool:
        return index < len(self.rest) and self.rest[index] in "0123456789"

    def fixed_digits(self, count: int) -> int:
        chunk = self.rest[:count]
        if len(chunk) < count or not all(c in "0123456789" for c in chunk):
            raise self.fail()
        self.rest = self.rest[count:]
        return int(chunk)

    def number(self, fixed: bool) -> int:
        """Go's getnum: two digits, or one when not fixed."""
        if not self.digit(0):
            raise self.fail()
        if not self.digit(1):
            if fixed:
                raise self.fail()
            value, self.rest = int(self.rest[0]), self.rest[1:]
            return value
        value, self.rest = int(self.rest[:2]), self.rest[2:]
        return value

    def literal(self, text: str) -> None:
        if not self.rest.startswith(text):
            raise self.fail()
        self.rest = self.rest[len(text) :]

    def fraction(self) -> int:
        if not (self.rest[:1] in (".", ",") and self.digit(1)):
            return 0
        end = 2
        while self.digit(end):
            end += 1
        digits = self.rest[1 : min(end, 10)]
        self.rest = self.rest[end:]
        scale: int = 10 ** (9 - len(digits))
        return int(digits) * scale

    def zone(self) -> int:
        """Seconds east of UTC."""
        if self.rest[:1] == "Z":
            self.rest = self.rest[1:]
            return 0
        if len(self.rest) < 6 or self.rest[3] != ":" or self.rest[0] not in "+-":
            raise self.fail()
        hours, minutes = self.rest[1:3], self.rest[4:6]
        if not all(c in "0123456789" for c in hours + minutes):
            raise self.fail()
        if int(hours) > 24 or int(minutes) > 60:
            raise BuiltinError(f"parsing time {self.text!r}: time zone offset out of range")
        offset = (int(hours) * 60 + int(minutes)) * 60
        sign, self.rest = self.rest[0], self.rest[6:]
        return -offset if sign == "-" else offset
