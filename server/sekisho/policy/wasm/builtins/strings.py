"""sprintf (topdown/strings.go builtinSprintf), indexof_n (builtinIndexOfN: code-point
indexes) and strings.split_n (builtinSplitN), the string builtins the Wasm target leaves to the
host."""

from typing import Any

from sekisho.policy.wasm.builtins.gofmt import Arg, sprintf
from sekisho.policy.wasm.builtins.operands import int_operand
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
    return _occurrences(base, search)


def _occurrences(base: str, search: str) -> list[int]:
    """Knuth-Morris-Pratt: linear in len(base) + len(search). Testing each index with
    startswith is O(len(base) * len(search)) when both are long and repetitive (`a` * 1.6M
    against `a` * 800k: 21 s of CPU), and policy may pass two caller-chosen strings."""
    fallback = [0] * len(search)  # longest proper border of search[: i + 1]
    k = 0
    for i in range(1, len(search)):
        while k and search[i] != search[k]:
            k = fallback[k - 1]
        if search[i] == search[k]:
            k += 1
        fallback[i] = k
    found, k = [], 0
    for i, char in enumerate(base):
        while k and char != search[k]:
            k = fallback[k - 1]
        if char == search[k]:
            k += 1
        if k == len(search):
            found.append(i - k + 1)
            k = fallback[k - 1]
    return found


def _split_n(text: Any, delimiter: Any, count: Any) -> list[str]:
    """builtinSplitN: n >= 0 keeps the first n parts of strings.SplitN(text, delimiter, n + 1)
    (the unsplit rest is dropped); n < 0 keeps the last -n parts of strings.Split. Operands as
    Rego values (rego_text), so n is read from its text as OPA reads it."""
    if not isinstance(text, str) or not isinstance(delimiter, str):
        raise BuiltinError("strings.split_n takes two strings and a number")
    n = int_operand(count, "strings.split_n")
    if n >= 0:
        return _go_split(text, delimiter, n + 1)[:n]
    parts = _go_split(text, delimiter, -1)
    return parts[max(len(parts) + n, 0) :]


def _go_split(text: str, delimiter: str, limit: int) -> list[str]:
    """Go's strings.SplitN (limit < 0: all parts); an empty delimiter splits into code points,
    the last part holding the rest."""
    if delimiter:
        return text.split(delimiter, limit - 1 if limit > 0 else -1)
    if 0 <= limit < len(text):
        return [*text[: limit - 1], text[limit - 1 :]] if limit > 0 else []
    return list(text)


BUILTINS = (
    HostBuiltin("sprintf", _sprintf, rego_text=True),
    HostBuiltin("indexof_n", _indexof_n),
    HostBuiltin("strings.split_n", _split_n, rego_text=True),
)
