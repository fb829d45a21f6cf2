"""Go's fmt for a float64 operand (src/fmt/format.go `fmtFloat`, Go 1.26): strconv's text for
the verb, then the `#` flag (keep a decimal point and trailing zeros), the sign and padding.
strconv's %e %f %g digits come from gofloat.py; %b and %x/%X are ported here
(src/strconv/ftoa.go `fmtB`, `fmtX`)."""

import math
import struct

from sekisho.policy.wasm.builtins.gofloat import format_float

_MANT_BITS = 52
_BIAS = -1023


def fmt_float(value: float, verb: str, precision: int | None, flags: str, width: int) -> str:
    """fmt's (*fmt).fmtFloat; verb is one of e E f g G x X b (the caller maps F to f and v to
    g; precision None is strconv's -1, which fmt passes for g G x X b)."""
    plus, space, minus = "+" in flags, " " in flags, "-" in flags
    zero = "0" in flags and not minus
    num = _strconv(value, verb, precision)
    if space and num[0] == "+" and not plus:
        num = " " + num[1:]
    if num[1] in "IN":  # infinities and NaN are never zero padded
        if num[1] == "N" and not space and not plus:
            num = num[1:]
        return _pad(num, width, minus, zero=False)
    if "#" in flags and verb != "b":
        num = _sharp(num, verb, precision)
    if plus or num[0] != "+":
        if zero and width > len(num):
            return num[0] + "0" * (width - len(num)) + num[1:]
        return _pad(num, width, minus, zero)
    return _pad(num[1:], width, minus, zero)


def _pad(text: str, width: int, minus: bool, zero: bool) -> str:
    fill = width - len(text)
    if fill <= 0:
        return text
    if minus:
        return text + " " * fill
    return ("0" if zero else " ") * fill + text


def _strconv(value: float, verb: str, precision: int | None) -> str:
    """strconv.AppendFloat's text, always with a leading sign."""
    sign = "-" if math.copysign(1.0, value) < 0 else "+"
    if math.isnan(value):
        return "+NaN"
    if math.isinf(value):
        return sign + "Inf"
    magnitude = abs(value)
    if verb == "b":
        return sign + _format_b(magnitude)
    if verb in "xX":
        return sign + _format_x(magnitude, -1 if precision is None else precision, verb)
    return sign + format_float(magnitude, verb, precision)


def _sharp(num: str, verb: str, precision: int | None) -> str:
    """fmtFloat's `f.sharp` branch: count the significant characters (from the first that is
    not '0'; an 'x' of `0x` counts too, as in Go's loop) and add zeros up to the precision.
    String operations, not a loop per character: the text may be ten million characters."""
    digits = (6 if precision is None else precision) if verb in "gGx" else 0
    body = num[1:]
    markers = "pP" if verb in "xX" else "pPeE"
    cut = min((i for i in (body.find(m) for m in markers) if i >= 0), default=len(body))
    body, tail = body[:cut], body[cut:]
    digits -= len(body.replace(".", "").lstrip("0"))
    if "." not in body:
        digits -= 1 if body == "0" else 0
        body += "."
    return num[0] + body + "0" * max(digits, 0) + tail


def _bits(value: float) -> tuple[int, int]:
    """(mantissa, exponent) as strconv reads a float64: value = mantissa * 2^(exponent - 52)."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", value))
    exponent = (bits >> _MANT_BITS) & 0x7FF
    mantissa = bits & ((1 << _MANT_BITS) - 1)
    if exponent == 0:
        exponent += 1  # denormal
    else:
        mantissa |= 1 << _MANT_BITS
    return mantissa, exponent + _BIAS


def _format_b(magnitude: float) -> str:
    """strconv's fmtB: decimal mantissa, 'p', binary exponent."""
    mantissa, exponent = _bits(magnitude)
    exponent -= _MANT_BITS
    return f"{mantissa}p{'+' if exponent >= 0 else ''}{exponent}"


def _format_x(magnitude: float, precision: int, verb: str) -> str:
    """strconv's fmtX: 0x1.8p+00, the mantissa rounded to `precision` hex digits (half even)."""
    mantissa, exponent = _bits(magnitude)
    if mantissa == 0:
        exponent = 0
    mantissa <<= 60 - _MANT_BITS
    while mantissa != 0 and mantissa & (1 << 60) == 0:
        mantissa <<= 1
        exponent -= 1
    if 0 <= precision < 15:
        shift = precision * 4
        extra = (mantissa << shift) & ((1 << 60) - 1)
        mantissa >>= 60 - shift
        if extra | (mantissa & 1) > 1 << 59:
            mantissa += 1
        mantissa <<= 60 - shift
        if mantissa & (1 << 61):
            mantissa >>= 1
            exponent += 1
    hexdigits = "0123456789abcdef" if verb == "x" else "0123456789ABCDEF"
    out = "0" + verb + str((mantissa >> 60) & 1)
    mantissa = (mantissa << 4) & ((1 << 64) - 1)
    # At most 15 hex digits are not zero (a 61-bit mantissa): the rest of a long precision
    # is zeros, written at once rather than one by one.
    fraction: list[str] = []
    while mantissa != 0 and (precision < 0 or len(fraction) < precision):
        fraction.append(hexdigits[(mantissa >> 60) & 15])
        mantissa = (mantissa << 4) & ((1 << 64) - 1)
    if precision > 0:
        out += "." + "".join(fraction) + "0" * (precision - len(fraction))
    elif fraction:
        out += "." + "".join(fraction)
    sign = "-" if exponent < 0 else "+"
    return f"{out}{'p' if verb == 'x' else 'P'}{sign}{abs(exponent):02d}"
