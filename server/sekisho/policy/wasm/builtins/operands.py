"""Integer operands as OPA reads them (topdown/builtins.IntOperand → ast.Number.Int →
util.Atoi64 on the number's text): an optional sign, at most 19 digits, an optional `.`
followed only by zeros, within int64. `1.0` is 1; `1e2`, `1.5` and 2^63 are refused (the call
is undefined). Builtins that take such an operand read it as Rego text (HostBuiltin.rego_text),
so the number's text is the one OPA parsed.

Time operands (topdown/time.go tzTime) are read differently, through big.Float: see
gobigfloat.py. `1e1` and `1.0` are 10 and 1 there; `1.5`, 2^63 and -2^63-1 are refused."""

from typing import Any

from sekisho.policy.wasm.builtins.gobigfloat import exact_int64
from sekisho.policy.wasm.builtins.registry import BuiltinError
from sekisho.policy.wasm.builtins.regotext import Number

_INT64 = 1 << 63


def int_operand(value: Any, name: str) -> int:
    """builtins.IntOperand. Raises: BuiltinError."""
    if not isinstance(value, Number):
        raise BuiltinError(f"{name}: operand must be a number")
    parsed = atoi64(value.text)
    if parsed is None:
        raise BuiltinError(f"{name}: operand must be an integer")
    return parsed


def nanoseconds_operand(value: Any, name: str) -> int:
    """tzTime's ns: NumberOperand, NumberToFloat, Float.Int64 Exact. Raises: BuiltinError,
    NumberTooLongError (a text past gobigfloat.MAX_TEXT: the call traps)."""
    if not isinstance(value, Number):
        raise BuiltinError(f"{name}: operand must be a number")
    parsed = exact_int64(value.text)
    if parsed is None:
        raise BuiltinError("timestamp too big")
    return parsed


def atoi64(text: str) -> int | None:
    """util.Atoi64: the value, or None where Go's returns false."""
    negative = text.startswith("-")
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not 0 < len(digits) <= 19:
        return None
    whole, _, fraction = digits.partition(".")
    if "." in fraction or fraction.strip("0") or not all("0" <= c <= "9" for c in whole):
        return None
    number = int(whole) if whole else 0
    if negative:
        return -number if number <= _INT64 else None
    return number if number < _INT64 else None
