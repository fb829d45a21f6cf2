"""Go's fmt.Sprintf, for the operand kinds OPA's sprintf passes it (topdown/strings.go):
int64 or *big.Int (a number written without '.', 'e' or 'E'), float64 (any other number),
string (a string operand, and the Rego text of every other value).

Supported: every directive Go reads (gofmtdirective.py: flags `+ - # 0 space`, `[n]` operand
indexes, widths and precisions written or taken from an operand with `*`), verbs `v s q d b o O
x X c U e E f F g G t T %` (`%T` prints the Go type OPA passed: `int64`, `*big.Int`, `float64`
or `string`), and Go's error forms (`%!d(string=a)`, `%!d(MISSING)`, `%!v(BADINDEX)`,
`%!(BADWIDTH)`, `%!(EXTRA int64=1)`, `%!(NOVERB)`). `%p` and `%w` of an integer beyond int64
raise UnsupportedFormatError (Go prints a memory address or the big.Int's fields): the
evaluation then fails closed instead of answering differently from OPA.
"""

from dataclasses import dataclass

from sekisho.policy.wasm.builtins.gofmtdirective import Directive, scan
from sekisho.policy.wasm.builtins.gofmtfloat import fmt_float
from sekisho.policy.wasm.builtins.regotext import go_quote

Arg = int | float | str


class UnsupportedFormatError(Exception):
    """A format construct this implementation does not reproduce."""


@dataclass(frozen=True, slots=True)
class Spec:
    flags: str
    width: int
    precision: int | None
    verb: str

    def has(self, flag: str) -> bool:
        return flag in self.flags


def sprintf(template: str, args: list[Arg]) -> str:
    """fmt.Sprintf(template, args...) (doPrintf). Raises: UnsupportedFormatError."""
    out: list[str] = []
    operand, position, reordered = 0, 0, False
    while position < len(template):
        percent = template.find("%", position)
        if percent < 0:
            out.append(template[position:])
            break
        out.append(template[position:percent])
        directive = scan(template, percent + 1, operand, args)
        out.append(directive.notes)
        operand, position = directive.operand, directive.end
        reordered = reordered or directive.reordered
        if directive.verb == "":
            out.append("%!(NOVERB)")
            break
        text, consumed = _directive(directive, args)
        out.append(text)
        operand += consumed
    if not reordered and operand < len(args):
        extra = ", ".join(
            f"{_type_name(a)}={_format(Spec('', 0, None, 'v'), a)}" for a in args[operand:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _directive(directive: Directive, args: list[Arg]) -> tuple[str, int]:
    """(text, operands consumed): `%`, BADINDEX and MISSING consume none."""
    verb = directive.verb
    if verb == "%":  # takes no operand, ignores width and precision
        return "%", 0
    if not directive.index_ok:
        return f"%!{verb}(BADINDEX)", 0
    if directive.operand >= len(args):
        return f"%!{verb}(MISSING)", 0
    arg = args[directive.operand]
    flags = _v_flags(verb, directive.flags, arg)
    spec = Spec(flags, directive.width, directive.precision, verb)
    if verb == "T":  # Go's printArg: the operand's Go type name, printed as %s prints
        return _format_string(Spec(flags, spec.width, spec.precision, "s"), _type_name(arg)), 1
    return _format(spec, arg), 1


def _v_flags(verb: str, flags: str, arg: Arg | None) -> str:
    """fmt's doPrintf for %v and %w (which falls through to it): '+' becomes plusV and '#'
    sharpV. plusV is no sign (but a *big.Int, which formats itself, reads it as '+'); sharpV
    quotes a string (kept here as '#') and changes nothing for a number."""
    if verb not in ("v", "w"):
        return flags
    if not (isinstance(arg, int) and _is_big(arg)):
        flags = flags.replace("+", "")
    return flags if isinstance(arg, str) else flags.replace("#", "")


def _type_name(arg: Arg) -> str:
    if isinstance(arg, str):
        return "string"
    if isinstance(arg, float):
        return "float64"
    return "int64" if -(2**63) <= arg < 2**63 else "*big.Int"


def _bad(spec: Spec, arg: Arg) -> str:
    # Go's badVerb prints the operand with %v and the directive's own flags, width, precision.
    # (`#` there is not Go-syntax %#v, a string is not quoted, except after %#w: sharpV.)
    flags = spec.flags.replace("#", "") if isinstance(arg, str) and spec.verb != "w" else spec.flags
    shown = _format(Spec(flags, spec.width, spec.precision, "v"), arg)
    return f"%!{spec.verb}({_type_name(arg)}={shown})"


def _format(spec: Spec, arg: Arg) -> str:
    if isinstance(arg, str):
        return _format_string(spec, arg)
    if isinstance(arg, float):
        return _format_float(spec, arg)
    return _format_int(spec, arg)


def _pad(spec: Spec, body: str, zero_ok: bool = True) -> str:
    """A number: zeros go after its sign (fmt's fmtInteger, fmtFloat)."""
    if len(body) >= spec.width:
        return body
    fill = spec.width - len(body)
    if spec.has("-"):
        return body + " " * fill
    if zero_ok and spec.has("0"):
        sign = body[0] if body[:1] in ("+", "-", " ") else ""
        return sign + "0" * fill + body[len(sign) :]
    return " " * fill + body


def _pad_text(spec: Spec, body: str) -> str:
    """Text (strings, runes, quoted forms): fmt's writePadding, zeros before any '-' or '+'."""
    fill = spec.width - len(body)
    if fill <= 0:
        return body
    if spec.has("-"):
        return body + " " * fill
    return ("0" if spec.has("0") else " ") * fill + body


def _format_string(spec: Spec, arg: str) -> str:
    text = arg if spec.precision is None else arg[: spec.precision]
    if spec.verb == "v" and spec.has("#"):
        return _pad_text(spec, go_quote(text))
    if spec.verb in ("v", "s"):
        return _pad_text(spec, text)
    if spec.verb == "q":
        if spec.has("#") and _can_backquote(text):
            return _pad_text(spec, f"`{text}`")
        return _pad_text(spec, _ascii(go_quote(text)) if spec.has("+") else go_quote(text))
    if spec.verb in ("x", "X"):
        return _pad_text(spec, _hex_string(spec, arg))
    return _bad(spec, arg)


def _hex_string(spec: Spec, arg: str) -> str:
    data = arg.encode()
    if spec.precision is not None:
        data = data[: spec.precision]
    digits = "0123456789abcdef" if spec.verb == "x" else "0123456789ABCDEF"
    prefix = ("0x" if spec.verb == "x" else "0X") if spec.has("#") else ""
    parts = [prefix + digits[b >> 4] + digits[b & 15] for b in data]
    if spec.has(" "):
        return " ".join(parts)
    return (prefix if parts else "") + "".join(p[len(prefix) :] for p in parts)


def _can_backquote(text: str) -> bool:
    """strconv.CanBackquote."""
    return all(c == "\t" or (c >= " " and c not in "`\x7f\ufeff") for c in text)


def _is_big(arg: int) -> bool:
    return not -(2**63) <= arg < 2**63


def _format_int(spec: Spec, arg: int) -> str:  # noqa: PLR0911 - one return per verb family
    verb = spec.verb
    if _is_big(arg):
        # *big.Int formats itself (math/big Int.Format): s and v print as d; others are errors.
        if verb in ("w", "p"):
            # Go prints `%!w(*big.Int=&{false [1]})` (its fields, after the flags) or, for %p,
            # a memory address: nothing a policy can rely on, and not reproducible.
            raise UnsupportedFormatError(f"%{verb} of an integer beyond int64")
        if verb not in "bdoOxXsv":
            return f"%!{verb}(big.Int={arg})"
        return _format_big(spec, "d" if verb in "sv" else verb, arg)
    if verb in _BASES:
        return _format_int64(spec, verb, arg)
    if verb == "c":
        return _pad_text(spec, _rune(arg))
    if verb == "q":
        return _pad_text(spec, _quote_rune(spec, _rune(arg)))
    if verb == "U":
        return _pad(spec, _unicode(spec, arg % 2**64), zero_ok=False)  # Go: uint64(arg), spaces
    return _bad(spec, arg)


_BASES = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}


def _zero(spec: Spec) -> bool:
    """fmt's f.zero: '0' given and '-' not (Go: `zero = !minus`, and '-' clears it)."""
    return spec.has("0") and not spec.has("-")


def _format_int64(spec: Spec, verb: str, arg: int) -> str:
    """fmt's fmtInteger: zeros to the precision (or to the width less the sign), then the
    `#` prefix and the sign outside them, then space padding."""
    if spec.precision == 0 and arg == 0:
        return " " * spec.width  # no digits, no sign, no prefix
    sign = "-" if arg < 0 else "+" if spec.has("+") else " " if spec.has(" ") else ""
    if spec.precision is not None:
        fill = spec.precision
    elif _zero(spec) and spec.width:
        fill = spec.width - (1 if sign else 0)
    else:
        fill = 0
    digits = _digits(abs(arg), _BASES[verb], upper=verb == "X").rjust(fill, "0")
    if spec.has("#"):
        if verb == "b":
            digits = "0b" + digits
        elif verb in "oO" and not digits.startswith("0"):  # base 8: %#O is 0o0377
            digits = "0" + digits
        elif verb in "xX":
            digits = ("0x" if verb == "x" else "0X") + digits
    if verb == "O":
        digits = "0o" + digits
    return _pad(spec, sign + digits, zero_ok=False)


def _format_big(spec: Spec, verb: str, arg: int) -> str:
    """math/big Int.Format: [spaces][sign][prefix][zeros][digits][spaces]."""
    sign = "-" if arg < 0 else "+" if spec.has("+") else " " if spec.has(" ") else ""
    prefix = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "") if spec.has("#") else ""
    prefix = "0o" if verb == "O" else prefix
    digits = _digits(abs(arg), _BASES[verb], upper=verb == "X")
    zeros = max(0, (spec.precision or 0) - len(digits))
    length = len(sign) + len(prefix) + zeros + len(digits)
    pad = max(0, spec.width - length)
    if spec.has("-"):
        return sign + prefix + "0" * zeros + digits + " " * pad
    if _zero(spec) and spec.precision is None:
        return sign + prefix + "0" * (zeros + pad) + digits
    return " " * pad + sign + prefix + "0" * zeros + digits


def _quote_rune(spec: Spec, char: str) -> str:
    """fmt's fmtQc: strconv.QuoteRune, or QuoteRuneToASCII with '+' ('#' changes nothing)."""
    quoted = go_quote(char, "'")
    return _ascii(quoted) if spec.has("+") else quoted


def _ascii(quoted: str) -> str:
    """strconv's ToASCII forms: every non-ASCII character of a quoted text escaped."""
    return "".join(
        c if ord(c) < 0x80 else (f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
        for c in quoted
    )


def _rune(code: int) -> str:
    """Go's rune(code), with utf8.RuneError for what is not a Unicode scalar value."""
    valid = 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF
    return chr(code) if valid else "\ufffd"


def _unicode(spec: Spec, value: int) -> str:
    text = "U+" + f"{value:X}".zfill(max(4, spec.precision or 0))
    if spec.has("#") and value <= 0x10FFFF and chr(value).isprintable():
        text += f" '{chr(value)}'"
    return text


def _digits(value: int, base: int, upper: bool) -> str:
    if base == 10:
        return str(value)
    text = {2: format(value, "b"), 8: format(value, "o"), 16: format(value, "x")}[base]
    return text.upper() if upper else text


def _format_float(spec: Spec, arg: float) -> str:
    """pp.fmtFloat: %v is %g at the shortest precision, %F is %f; e, E, f default to 6."""
    verb = {"v": "g", "F": "f"}.get(spec.verb, spec.verb)
    if verb not in "eEfgGxXb":
        return _bad(spec, arg)
    precision = spec.precision
    if precision is None and verb in "eEf":
        precision = 6
    return fmt_float(arg, verb, precision, spec.flags, spec.width)
