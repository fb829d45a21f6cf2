"""Go's math/big.Float as OPA's tzTime reads a time operand (topdown/time.go: NumberToFloat →
Float.SetString, then Float.Int64 with Exact accuracy required).

SetString rounds to 64 bits (half to even): the decimal mantissa times 5**exp5, where 5**exp5
(Float.pow5) is itself built at 128 bits by squaring at 192 bits. So `1e1` and `1.0` are exact
integers, `1234567890123456789.4` is not (64 bits keep the .375), and `1e-700000000`
underflows to an exact 0 (Go's exponent is an int32). This module repeats those steps on
Python integers; a mantissa never exceeds 192 bits after rounding.

Reading the decimal mantissa is quadratic in its length (300,000 digits: 3 s of CPU), and a
policy's `time.date(to_number(input.request.context.t))` lets the caller choose it, so a text
longer than MAX_TEXT characters raises NumberTooLongError, which traps the evaluation (a deny)
where Go would round it. A time in ns needs 19 digits."""

import re
from dataclasses import dataclass
from decimal import Decimal

_PREC = 64
MAX_TEXT = 4_300  # sys.int_info.default_max_str_digits: cheap to read, far past any time
_MAX_EXP = 2**31 - 1
_MIN_EXP = -(2**31)
_POW5_TABLE_MAX = 27  # 5**27 is the largest power of 5 in a uint64 (pow5tab)
_NUMBER = re.compile(r"(-?)(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?")


class NumberTooLongError(Exception):
    """A number text too long to read here: the call traps."""


@dataclass(frozen=True, slots=True)
class _Float:
    """A positive value mant * 2**(exp - mant.bit_length()) (Go's 0.mant * 2**exp), 0 (mant
    0) or +Inf."""

    mant: int = 0
    exp: int = 0
    inf: bool = False


_INF = _Float(inf=True)
_ZERO = _Float()


def exact_int64(text: str) -> int | None:
    """The int64 the number's text is under SetString + Int64, or None unless Exact.
    Raises: NumberTooLongError."""
    if len(text) > MAX_TEXT:
        raise NumberTooLongError(f"number text longer than {MAX_TEXT} characters")
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    sign, whole, fraction, exponent = match.groups()
    mant = int(Decimal(whole + (fraction or "")))  # Decimal: no int() digit limit
    if mant == 0:
        return 0
    exp5 = int(exponent or 0) - len(fraction or "")
    if not _MIN_EXP <= mant.bit_length() + exp5 <= _MAX_EXP:
        return None  # Go: "exponent overflow", SetString fails (OPA refuses such text)
    number = _integer(_scaled(mant, exp5))
    if number is None:
        return None
    number = -number if sign else number
    return number if -(2**63) <= number < 2**63 else None


def _scaled(mant: int, exp5: int) -> _Float:
    """mant * 10**exp5 rounded to 64 bits as Float.scan does."""
    exact = _Float(mant, mant.bit_length() + exp5)  # the 2**exp5 half of 10**exp5, exact
    if exp5 == 0:
        return _round(mant, exact.exp, _PREC)
    power = _pow5(abs(exp5))
    return _mul(exact, power, _PREC) if exp5 > 0 else _quo(exact, power, _PREC)


def _pow5(n: int) -> _Float:
    """Float.pow5 at 128 bits: 5**27 times 5**(n-27) by squaring 5 at 192 bits."""
    if n <= _POW5_TABLE_MAX:
        return _Float(5**n, (5**n).bit_length())
    z = _Float(5**_POW5_TABLE_MAX, (5**_POW5_TABLE_MAX).bit_length())
    f, n = _Float(5, 3), n - _POW5_TABLE_MAX
    while n > 0:
        if n & 1:
            z = _mul(z, f, 2 * _PREC)
        f = _mul(f, f, 3 * _PREC)
        n >>= 1
    return z


def _mul(x: _Float, y: _Float, prec: int) -> _Float:
    if x.inf or y.inf:
        return _INF
    product = x.mant * y.mant
    scale = x.exp - x.mant.bit_length() + y.exp - y.mant.bit_length()
    return _round(product, scale + product.bit_length(), prec)


def _quo(x: _Float, y: _Float, prec: int) -> _Float:
    """Correctly rounded x / y (Float.Quo: the remainder is the sticky bit)."""
    if y.inf:
        return _ZERO
    shift = max(0, prec + 2 + y.mant.bit_length() - x.mant.bit_length())
    quotient, remainder = divmod(x.mant << shift, y.mant)
    scale = x.exp - x.mant.bit_length() - (y.exp - y.mant.bit_length()) - shift
    return _round(quotient, scale + quotient.bit_length(), prec, sticky=remainder != 0)


def _round(mant: int, exp: int, prec: int, sticky: bool = False) -> _Float:
    """Float.setExpAndRound: range check on the unrounded exponent (underflow is 0), then half
    to even."""
    if exp < _MIN_EXP:
        return _ZERO
    if exp > _MAX_EXP:
        return _INF
    shift = mant.bit_length() - prec
    if shift <= 0:
        return _Float(mant, exp)
    kept, rest, half = mant >> shift, mant & ((1 << shift) - 1), 1 << (shift - 1)
    if rest > half or (rest == half and (sticky or kept & 1)):
        kept += 1
        if kept.bit_length() > prec:
            if exp >= _MAX_EXP:
                return _INF
            kept, exp = kept >> 1, exp + 1
    return _Float(kept, exp)


def _integer(value: _Float) -> int | None:
    """|value| as an integer when it is one below 2**64 (Float.Int64's Exact), else None."""
    if value.mant == 0 and not value.inf:
        return 0
    if value.inf or not 0 < value.exp <= 64:
        return None
    scale = value.exp - value.mant.bit_length()
    if scale >= 0:
        return value.mant << scale
    return value.mant >> -scale if value.mant % (1 << -scale) == 0 else None
