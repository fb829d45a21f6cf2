"""How Go's fmt reads one directive of a format (Go 1.26 src/fmt/print.go `doPrintf`,
`argNumber`, `parseArgNumber`, `intFromArg`, `parsenum`): flags, an explicit operand index
`[n]`, a width or `*`, a precision or `.*` (each `*` takes an operand), the verb.

Go reads ASCII digits only ('0'-'9'): another script's digit is a verb there, as here.
"""

from collections.abc import Sequence
from dataclasses import dataclass

_TOO_LARGE = 1_000_000  # fmt's tooLarge
_FLAGS = "#0+- "


@dataclass(frozen=True, slots=True)
class Directive:
    flags: str  # '-' is added for a negative `*` width, as Go sets minus
    width: int
    precision: int | None
    verb: str  # "" when the format ends first: %!(NOVERB), and nothing after it is read
    operand: int  # the operand the verb prints
    index_ok: bool  # false: %!v(BADINDEX)
    reordered: bool  # an explicit index was written: no %!(EXTRA …) at the end
    notes: str  # %!(BADWIDTH) / %!(BADPREC), written before the directive's output
    end: int  # where the text after the directive starts


@dataclass(slots=True)
class _State:
    """doPrintf's variables for one directive."""

    template: str
    i: int
    operand: int
    count: int
    index_ok: bool = True
    reordered: bool = False
    after_index: bool = False

    def arg_number(self) -> None:
        """pp.argNumber: an explicit `[n]` at i, if any."""
        if self.i >= len(self.template) or self.template[self.i] != "[":
            self.after_index = False
            return
        self.reordered = True
        index, width, ok = _parse_arg_number(self.template[self.i :])
        self.i += width
        if ok and 0 <= index < self.count:
            self.operand, self.after_index = index, True
            return
        self.index_ok, self.after_index = False, ok


def scan(template: str, start: int, operand: int, args: Sequence[object]) -> Directive:
    """The directive whose '%' is at `start - 1`; `operand` is the next operand to print."""
    state = _State(template, start, operand, len(args))
    end = len(template)
    while state.i < end and template[state.i] in _FLAGS:
        state.i += 1
    flags, notes = template[start : state.i], ""
    state.arg_number()
    if state.i < end and template[state.i] == "*":
        state.i += 1
        width, present = _int_from_arg(args, state.operand)
        state.operand += 1 if state.operand < len(args) else 0
        notes += "" if present else "%!(BADWIDTH)"
        flags += "-" if width < 0 else ""
        width, state.after_index = abs(width), False
    else:
        width, present, state.i = _parsenum(template, state.i, end)
        if state.after_index and present:  # "%[3]2d"
            state.index_ok = False
    precision: int | None = None
    if state.i + 1 < end and template[state.i] == ".":
        state.i += 1
        if state.after_index:  # "%[3].2d"
            state.index_ok = False
        state.arg_number()
        if state.i < end and template[state.i] == "*":
            state.i += 1
            value, present = _int_from_arg(args, state.operand)
            state.operand += 1 if state.operand < len(args) else 0
            present = present and value >= 0
            notes += "" if present else "%!(BADPREC)"
            precision, state.after_index = (value if present else None), False
        else:
            value, _, state.i = _parsenum(template, state.i, end)
            precision = value
    if not state.after_index:
        state.arg_number()
    verb = template[state.i] if state.i < end else ""
    return Directive(
        flags, width, precision, verb, state.operand, state.index_ok, state.reordered, notes,
        state.i + 1,
    )  # fmt: skip


def _parse_arg_number(text: str) -> tuple[int, int, bool]:
    """parseArgNumber: (index - 1, characters taken, ok) of a `[n]` at text[0]."""
    if len(text) < 3:
        return 0, 1, False
    close = text.find("]", 1)
    if close < 0:
        return 0, 1, False
    number, present, after = _parsenum(text, 1, close)
    if not present or after != close:
        return 0, close + 1, False
    return number - 1, close + 1, True


def _parsenum(text: str, start: int, end: int) -> tuple[int, bool, int]:
    """parsenum: (number, any digits, index after them); past 1e6 with digits still to come
    Go gives up and skips to `end` (`%999999999s`: %!(NOVERB), never a 1 GB string)."""
    number, index = 0, start
    while index < end and "0" <= text[index] <= "9":
        if number > _TOO_LARGE:
            return 0, False, end
        number = number * 10 + ord(text[index]) - 48
        index += 1
    return number, index > start, index


def _int_from_arg(args: Sequence[object], operand: int) -> tuple[int, bool]:
    """intFromArg: an int64 operand within ±1e6 (OPA passes integers as int64; *big.Int,
    float64 and strings are not ints)."""
    if operand >= len(args):
        return 0, False
    value = args[operand]
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _TOO_LARGE:
        return 0, False
    return value, True
