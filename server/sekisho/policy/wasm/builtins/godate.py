"""Go's time.Date arithmetic on a wall time (Go 1.26 src/time/time.go `Date`, `norm`,
`dateToAbsDays`), in Go's fixed-width integers: `int` and `int64` wrap at 2^64, `uint32` at
2^32. OPA's time.add_date calls `t.AddDate(years, months, days)` with any int64 deltas, so
`year + years` and the day count can overflow; Go does not check, and a result that wraps back
into the int64-nanosecond range is a defined, ordinary-looking timestamp in OPA
(bench/results/builtins_session10.md). Reproducing the wrap is what keeps the embedded engine
deciding as `opa eval` does.
"""

_M32 = (1 << 32) - 1
_M64 = (1 << 64) - 1
_ABSOLUTE_YEARS = 292277022400
_SECONDS_PER_DAY = 86400
# absoluteToInternal = -(absoluteYears*365.2425 + marchThruDecember) * secondsPerDay, exact
_ABSOLUTE_TO_INTERNAL = -(_ABSOLUTE_YEARS * 3652425 // 10000 + 306) * _SECONDS_PER_DAY
_UNIX_TO_INTERNAL = (1969 * 365 + 1969 // 4 - 1969 // 100 + 1969 // 400) * _SECONDS_PER_DAY
_ABSOLUTE_TO_UNIX = _ABSOLUTE_TO_INTERNAL - _UNIX_TO_INTERNAL


def wrap64(value: int) -> int:
    """The int64 Go holds after an operation whose exact result is `value`."""
    return ((value + (1 << 63)) & _M64) - (1 << 63)


def _norm(hi: int, lo: int, base: int) -> tuple[int, int]:
    """Go's norm: lo into [0, base), carrying into hi (int arithmetic, wrapping; Go's `/`
    truncates, and both dividends here are non-negative)."""
    if lo < 0:
        n = wrap64(wrap64(-lo) - 1) // base + 1
        hi, lo = wrap64(hi - n), wrap64(lo + n * base)
    if lo >= base:
        n = lo // base
        hi, lo = wrap64(hi + n), wrap64(lo - n * base)
    return hi, lo


def _abs_days(year: int, month: int, day: int) -> int:
    """Go's dateToAbsDays (uint64 days since March 1, -292277022399)."""
    amonth = month & _M32
    jan_feb = 1 if amonth < 3 else 0
    amonth = (amonth + 12 * jan_feb) & _M32
    y = (year - jan_feb + _ABSOLUTE_YEARS) & _M64
    ayday = ((979 * amonth - 2919) & _M32) >> 5
    century, cyear = y // 100, y % 100
    cday = 1461 * cyear // 4
    centurydays = ((146097 * century) & _M64) // 4
    return (centurydays + (wrap64(((cday + ayday) & _M32) + day - 1) & _M64)) & _M64


def wall_seconds(year: int, month: int, day: int, second_of_day: int) -> int:
    """The Unix seconds Go's time.Date computes for a wall time before the zone offset
    (`unix` in Date), for an int year, month and day; second_of_day in [0, 86400)."""
    year, month0 = _norm(year, wrap64(month - 1), 12)
    absdays = wrap64(_abs_days(year, wrap64(month0 + 1), day))
    return wrap64(absdays * _SECONDS_PER_DAY + second_of_day + _ABSOLUTE_TO_UNIX)


def add_date_wall(
    date: tuple[int, int, int], second_of_day: int, deltas: tuple[int, int, int]
) -> int:
    """Time.AddDate's wall seconds: Date(year+years, month+months, day+days, …) in Go's int."""
    year, month, day = (wrap64(part + delta) for part, delta in zip(date, deltas, strict=True))
    return wall_seconds(year, month, day, second_of_day)
