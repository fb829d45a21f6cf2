"""Go's strconv float formatting for fmt's %e %E %f %F %g %G (and %v, which is %g with the
shortest precision): the digits are Python's (both round the exact binary value correctly, and
both find the shortest round-tripping digits), the layout is Go's `formatDigits`."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Digits:
    digits: str  # no trailing zeros; "" for zero
    point: int  # decimal point position: value = 0.digits * 10**point


def format_float(value: float, verb: str, precision: int | None) -> str:
    """The text of a non-negative finite `value` for one verb (sign handled by the caller)."""
    lower = verb.lower()
    if lower in ("e", "f"):
        places = 6 if precision is None else precision
        text = format(value, f".{places}{lower}")
        return text.upper() if verb == "E" else text
    shortest = precision is None
    digits = _shortest(value) if shortest else _rounded(value, max(precision or 0, 1))
    text = _format_g(digits, None if shortest else max(precision or 0, 1))
    return text.upper() if verb == "G" else text


def _shortest(value: float) -> _Digits:
    if value == 0:
        return _Digits("", 0)
    mantissa, _, exponent = repr(value).partition("e")
    whole, _, fraction = mantissa.partition(".")
    raw = (whole + fraction).lstrip("0")
    point = (
        len(whole)
        + int(exponent or 0)
        - (len(whole + fraction) - len((whole + fraction).lstrip("0")))
    )
    return _Digits(raw.rstrip("0"), point)


# A double's exact decimal value has at most 767 significant digits: rounding to more gives the
# same digits, so `%.10000000g` costs 800 digits' work, not ten million.
_EXACT_DIGITS = 800


def _rounded(value: float, significant: int) -> _Digits:
    if value == 0:
        return _Digits("", 0)
    places = min(significant, _EXACT_DIGITS) - 1
    mantissa, _, exponent = format(value, f".{places}e").partition("e")
    digits = mantissa.replace(".", "").rstrip("0")
    return _Digits(digits, int(exponent) + 1)


def _format_g(d: _Digits, precision: int | None) -> str:
    count = len(d.digits)
    if precision is None:
        precision, limit = count, 6
    else:
        limit = count if precision > count >= d.point else precision
    exponent = d.point - 1
    if exponent < -4 or exponent >= limit:
        return _format_e(d, min(precision, count) - 1)
    if precision > d.point:
        precision = count
    return _format_f(d, max(precision - d.point, 0))


def _format_e(d: _Digits, places: int) -> str:
    first = d.digits[:1] or "0"
    rest = d.digits[1 : 1 + places].ljust(places, "0") if places > 0 else ""
    exponent = d.point - 1 if d.digits else 0
    sign = "-" if exponent < 0 else "+"
    return f"{first}{'.' + rest if rest else ''}e{sign}{abs(exponent):02d}"


def _format_f(d: _Digits, places: int) -> str:
    whole = (d.digits[: d.point].ljust(d.point, "0") if d.point > 0 else "") or "0"
    fraction = "".join(
        d.digits[j] if 0 <= j < len(d.digits) else "0" for j in range(d.point, d.point + places)
    )
    return whole + ("." + fraction if places > 0 else "")


def format_fixed(value: float) -> str:
    """strconv.FormatFloat(value, 'f', -1, 64): the shortest digits, never an exponent."""
    digits = _shortest(abs(value))
    text = _format_f(digits, max(len(digits.digits) - digits.point, 0))
    return "-" + text if value < 0 or (value == 0 and str(value).startswith("-")) else text
