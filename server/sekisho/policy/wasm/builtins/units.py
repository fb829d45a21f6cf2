"""units.parse_bytes (topdown/parse_bytes.go) and units.parse (parse_units.go) with Go's
arithmetic reproduced exactly; units.parse (big.Rat, exact) is described at its table below.

The operand is lower-cased and stripped of `"`; a space anywhere is an error. The number is the
longest prefix of digits, `.`, `+`, `-` and exponents (`e` followed by a digit or sign, at most 6
exponent digits); the rest is the unit (`k`/`kb` = 1000 ... `e`/`eb` = 10^18, `ki`/`kib` = 2^10
... `ei`/`eib` = 2^60; none = 1). OPA parses the number into a big.Float of 64-bit precision
(the decimal mantissa exact, one rounding after scaling by 10^exp), multiplies by the unit at
64-bit precision and truncates toward zero.

Fractions do the same here, step by step: 5^n as big.Float's pow5 computes it (exact up to 5^27,
then squarings rounded to 192 bits and products to 128), the scaled mantissa rounded to 64 bits
(nearest, ties to even), the product with the unit likewise, then truncation. Every error is
undefined, as in OPA without strict builtin errors. A result of more than 4,300 digits (Python's
int-to-text limit) fails the evaluation: a deny, never a different number. Both ends are
known from the amount's order of magnitude before 10^exp is built (host code holds the GIL
and the evaluation deadline cannot stop it): far below a byte is 0, far too long fails.
"""

import re
from fractions import Fraction
from typing import Any

from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin
from sekisho.policy.wasm.builtins.regotext import Number

_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15, "e": 10**18}
_BINARY = {"ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40, "pi": 2**50, "ei": 2**60}
_UNITS = {"": 1} | _DECIMAL | {k + "b": v for k, v in _DECIMAL.items()}
_UNITS |= _BINARY | {k + "b": v for k, v in _BINARY.items()}
# big.Float.SetString of what the extraction can hand it (no prefixes, no underscores).
_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_PRECISION = 64
_MAX_EXPONENT_DIGITS = 6
_POW5_TABLE = 27  # the largest n with 5^n < 2^64: big.Float's pow5 starts from a table up to it
# Decimal orders of magnitude past which the answer is known without building 10^exp (a 9-byte
# "1e-999999" took ~0.2-0.4 s of GIL-holding CPU, which the evaluation deadline cannot stop):
_MAX_DIGITS = 4300  # a longer result cannot be written (Python's int-to-text limit): it fails
_BELOW_ONE_BYTE = -20  # |amount| < 10^-20, times at most 2^60 (EiB), truncates to 0
_BELOW_TEN_DECIMALS = -30  # |amount| < 10^-30, times at most 2^60, is 0.0000000000 (rounded)


def split_number(text: str) -> tuple[str, str]:
    """(number, unit) as extractNumAndUnit splits them. Raises: BuiltinError."""
    idx = 0
    while idx < len(text):
        char = text[idx]
        if not (char.isascii() and (char.isdigit() or char in ".eE+-")):
            return text[:idx], text[idx:]
        if char in "eE":
            following = text[idx + 1 : idx + 2]
            if not following or not (following in "+-" or _ascii_digit(following)):
                return text[:idx], text[idx:]
            if following in "+-":
                idx += 1
            digits = 0
            while idx + 1 + digits < len(text) and _ascii_digit(text[idx + 1 + digits]):
                digits += 1
            if digits > _MAX_EXPONENT_DIGITS:
                raise BuiltinError("exponent too large")
        idx += 1
    return text, ""


def _ascii_digit(char: str) -> bool:
    return "0" <= char <= "9"


def round_to_precision(value: Fraction, bits: int = _PRECISION) -> Fraction:
    """The nearest value with `bits` significant bits, ties to even (big.Float's default)."""
    if value == 0:
        return value
    sign = -1 if value < 0 else 1
    magnitude = abs(value)
    exponent = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exponent > magnitude:
        exponent -= 1
    scale = Fraction(2) ** (bits - 1 - exponent)  # magnitude * scale lies in [2^(bits-1), 2^bits)
    scaled = magnitude * scale
    whole, rest = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * rest
    if twice > scaled.denominator or (twice == scaled.denominator and whole % 2 == 1):
        whole += 1
    return sign * whole / scale


def pow5(n: int, precision: int = 2 * _PRECISION) -> Fraction:
    """5^n as big.Float.pow5 computes it for a target of `precision` bits."""
    if n <= _POW5_TABLE:
        return Fraction(5**n)
    result, factor, n = Fraction(5**_POW5_TABLE), Fraction(5), n - _POW5_TABLE
    while n > 0:
        if n & 1:
            result = round_to_precision(result * factor, precision)
        factor = round_to_precision(factor * factor, precision + _PRECISION)
        n >>= 1
    return result


def _decimal(text: str) -> tuple[int, int, int]:
    """(sign, mantissa, exponent of ten) of a decimal amount. Raises: BuiltinError."""
    match = _NUMBER.fullmatch(text)
    if match is None or not (match.group(2) or match.group(3)):
        raise BuiltinError("could not parse amount to a number")
    sign, whole, fraction, exponent = match.groups()
    mantissa = int((whole or "") + (fraction or "") or "0")
    return -1 if sign == "-" else 1, mantissa, int(exponent or 0) - len(fraction or "")


def magnitude(mantissa: int, exp10: int) -> int:
    """floor(log10(mantissa * 10^exp10)) for a mantissa > 0."""
    return len(str(mantissa)) - 1 + exp10


def _check_writable(mantissa: int, exp10: int) -> None:
    """Raises: ValueError (the evaluation fails) when the result would be too long to write."""
    if mantissa and magnitude(mantissa, exp10) > _MAX_DIGITS + 20:
        raise ValueError(f"the amount has more than {_MAX_DIGITS} digits")


def parse_rational(text: str) -> Fraction:
    """big.Rat.SetString: exact. Raises: BuiltinError."""
    sign, mantissa, exp10 = _decimal(text)
    return sign * mantissa * Fraction(10) ** exp10


def parse_float(text: str) -> Fraction:
    """big.Float.SetString at 64-bit precision. Raises: BuiltinError."""
    sign, mantissa, exp10 = _decimal(text)
    scaled = mantissa * Fraction(2) ** exp10
    power = pow5(abs(exp10))
    return sign * round_to_precision(scaled * power if exp10 >= 0 else scaled / power)


def go_lower(text: str) -> str:
    """strings.ToLower as far as it can make a unit: Go maps U+0130 (İ) to `i` (its simple case
    mapping), Python to `i` + U+0307; the Kelvin sign becomes `k` in both."""
    return text.replace("\u0130", "i").lower()


def parse_bytes(operand: Any) -> int:
    """Raises: BuiltinError."""
    if not isinstance(operand, str):
        raise BuiltinError("units.parse_bytes: operand must be a string")
    text = go_lower(operand).replace('"', "")
    if " " in text:
        raise BuiltinError("units.parse_bytes: spaces not allowed in resource strings")
    number, unit = split_number(text)
    if number == "":
        raise BuiltinError("units.parse_bytes: no byte amount provided")
    if unit not in _UNITS:
        raise BuiltinError(f"units.parse_bytes: byte unit {unit} not recognized")
    _, mantissa, exp10 = _decimal(number)
    _check_writable(mantissa, exp10)
    if mantissa == 0 or magnitude(mantissa, exp10) < _BELOW_ONE_BYTE:
        return 0
    total = round_to_precision(parse_float(number) * _UNITS[unit])
    return int(total)  # int() of a Fraction truncates toward zero, as big.Float.Int does


# units.parse (topdown/parse_units.go): case matters for the first letter only (m = milli,
# M = mega); milli is the float64 0.001 as a big.Rat, so not exactly 1/1000.
_SCALE: dict[str, Fraction] = {
    "": Fraction(1),
    "m": Fraction(0.001),
    "M": Fraction(10**6),
    **{unit: Fraction(10**3) for unit in ("k", "K")},
    **{unit: Fraction(10**9) for unit in ("g", "G")},
    **{unit: Fraction(10**12) for unit in ("t", "T")},
    **{unit: Fraction(10**15) for unit in ("p", "P")},
    **{unit: Fraction(10**18) for unit in ("e", "E")},
    **{unit: Fraction(2**10) for unit in ("ki", "Ki")},
    **{unit: Fraction(2**20) for unit in ("mi", "Mi")},
    **{unit: Fraction(2**30) for unit in ("gi", "Gi")},
    **{unit: Fraction(2**40) for unit in ("ti", "Ti")},
    **{unit: Fraction(2**50) for unit in ("pi", "Pi")},
    **{unit: Fraction(2**60) for unit in ("ei", "Ei")},
}


def float_string(value: Fraction, digits: int) -> str:
    """big.Rat.FloatString: `digits` decimals, the last rounded half away from zero."""
    whole, rest = divmod(abs(value.numerator), value.denominator)
    scale = 10**digits
    decimals, remainder = divmod(rest * scale, value.denominator)
    if 2 * remainder >= value.denominator:
        decimals += 1
        if decimals >= scale:
            whole, decimals = whole + 1, decimals - scale
    return f"{'-' if value < 0 else ''}{whole}.{str(decimals).rjust(digits, '0')}"


def parse_units(operand: Any) -> Number:
    """units.parse: the exact integer, else 10 decimals. Raises: BuiltinError."""
    if not isinstance(operand, str):
        raise BuiltinError("units.parse: operand must be a string")
    text = operand.replace('"', "")
    if " " in text:
        raise BuiltinError("units.parse: spaces not allowed in resource strings")
    number, unit = split_number(text)
    if number == "":
        raise BuiltinError("units.parse: no amount provided")
    if len(unit) > 1:
        unit = unit[:1] + go_lower(unit[1:])
    if unit not in _SCALE:
        raise BuiltinError(f"units.parse: unit {unit} not recognized")
    sign, mantissa, exp10 = _decimal(number)
    _check_writable(mantissa, exp10)
    if mantissa == 0:
        return Number("0")
    if magnitude(mantissa, exp10) < _BELOW_TEN_DECIMALS:
        return Number(f"{'-' if sign < 0 else ''}0.0000000000")  # float_string of the tiny value
    value = parse_rational(number) * _SCALE[unit]
    if value.denominator == 1:
        return Number(str(value.numerator))
    return Number(float_string(value, 10))


BUILTINS = (
    HostBuiltin("units.parse_bytes", parse_bytes),
    HostBuiltin("units.parse", parse_units),
)
