"""sprintf (topdown/strings.go builtinSprintf) and the string builtins the Wasm target leaves to
the host."""

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


BUILTINS = (HostBuiltin("sprintf", _sprintf, rego_text=True),)
