"""numbers.range_step (topdown/numbers.go builtinNumbersRangeStep), the numbers builtin OPA's
Wasm target leaves to the host (numbers.range is compiled into the module).

Operands are read as builtins.BigIntOperand reads them: the number's text as an exact rational
(big.Int, else big.Rat: `1.0` and `1e1` are integers, `1.5` is refused), so operands keep their
Rego text (HostBuiltin.rego_text). OPA builds any range until the query is cancelled; here a
range of more than MAX_ELEMENTS numbers, an operand written with an exponent beyond
±MAX_EXPONENT, or an operand text longer than MAX_TEXT characters raises RangeTooLargeError, which
traps the evaluation (a deny). The text bound comes first: reading a text as an exact rational is
quadratic in its length (a 300,000-digit `to_number(input.request.context.n)` took 6 s of CPU
before Python's own 4,300-digit int limit refused it), so a long attacker-chosen string costs
nothing. MAX_TEXT is that int limit: every longer integer text trapped already, only later.
"""

from decimal import Decimal
from fractions import Fraction
from typing import Any

from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin
from sekisho.policy.wasm.builtins.regotext import Number

MAX_ELEMENTS = 100_000
MAX_EXPONENT = 10_000
MAX_TEXT = 4_300  # sys.int_info.default_max_str_digits


class RangeTooLargeError(Exception):
    """A range or an operand too large to build here: the call traps."""


def big_int_operand(value: Any, name: str) -> int:
    """builtins.BigIntOperand. Raises: BuiltinError, RangeTooLargeError."""
    if not isinstance(value, Number):
        raise BuiltinError(f"{name}: operand must be a number")
    if len(value.text) > MAX_TEXT:
        raise RangeTooLargeError(f"{name}: operand text longer than {MAX_TEXT} characters")
    _, _, exponent = value.text.lower().partition("e")
    if exponent and abs(int(exponent)) > MAX_EXPONENT:
        raise RangeTooLargeError(f"{name}: exponent of {value.text} beyond ±{MAX_EXPONENT}")
    exact = Fraction(Decimal(value.text))
    if exact.denominator != 1:
        raise BuiltinError(f"{name}: operand must be an integer")
    return exact.numerator


def _range_step(first: Any, last: Any, step: Any) -> list[int]:
    """From `first` toward `last` (either direction) by `step` > 0, both ends included."""
    x, y, by = (big_int_operand(v, "numbers.range_step") for v in (first, last, step))
    if by <= 0:
        raise BuiltinError("numbers.range_step: step must be a positive integer")
    if abs(y - x) // by + 1 > MAX_ELEMENTS:
        raise RangeTooLargeError(f"numbers.range_step: more than {MAX_ELEMENTS} numbers")
    return list(range(x, y + 1, by)) if x <= y else list(range(x, y - 1, -by))


BUILTINS = (HostBuiltin("numbers.range_step", _range_step, rego_text=True),)
