"""sprintf (topdown/strings.go builtinSprintf) and indexof_n (builtinIndexOfN: code-point
indexes), the string builtins the Wasm target leaves to the host."""

from typing import Any

from sekisho.policy.wasm.builtins.gofmt import Arg, sprintf
from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin
from sekisho.policy.wasm.builtins.regotext import Number, render


def sprintf_arg(value: Any) -> Arg:
    """How OPA hands one array element to fmt.Sprintf: int64/big.Int (a number written without
    '.', 'e' or 'E'), float64 (other numbers), string, or the Go text of any other value."""
    if isinstance(value, str):
        return value
    if isinstance(value, Number):
        if any(c in value.text for c in ".eE"):
            number = float(value.text)
            return value.text if number in (float("inf"), float("-inf")) else number
        return int(value.text)
    return render(value)


def _sprintf(template: Any, values: Any) -> str:
    """Operands as Rego values (rego_text): the array's elements keep their number texts."""
    if not isinstance(template, str) or not isinstance(values, list):
        raise BuiltinError("sprintf takes a string and an array")
    return sprintf(template, [sprintf_arg(e) for e in values])


def _indexof_n(base: Any, search: Any) -> list[int]:
    """Every code-point index where `search` starts in `base`, overlapping ones included."""
    if not isinstance(base, str) or not isinstance(search, str):
        raise BuiltinError("indexof_n takes two strings")
    if search == "":
        raise BuiltinError("indexof_n: empty search character")
    return [i for i in range(len(base) - len(search) + 1) if base.startswith(search, i)]


BUILTINS = (
    HostBuiltin("sprintf", _sprintf, rego_text=True),
    HostBuiltin("indexof_n", _indexof_n),
)
