"""Go's fmt.Sprintf, for the operand kinds OPA's sprintf passes it (topdown/strings.go):
int64 or *big.Int (a number written without '.', 'e' or 'E'), float64 (any other number),
string (a string operand, and the Rego text of every other value).

Supported: flags `+ - # 0 space`, width, `.precision`, verbs `v s q d b o O x X c U e E f F g
G t %`, and Go's error forms (`%!d(string=a)`, `%!d(MISSING)`, `%!(EXTRA int=1)`,
`%!(NOVERB)`), and its limit on written widths and precisions (see `_parse_number`).
Argument indexes (`%[2]d`) and `*` widths raise UnsupportedFormatError: the
evaluation then fails closed instead of answering differently from OPA.
"""

import math
import re
from dataclasses import dataclass

from sekisho.policy.wasm.builtins.gofloat import format_float
from sekisho.policy.wasm.builtins.regotext import go_quote

Arg = int | float | str

# Go reads ASCII digits only ('0'-'9'): another script's digit is a verb there, as here.
_SPEC = re.compile(r"%([-+# 0]*)([0-9]*)(?:\.([0-9]*))?(.?)", re.DOTALL)
_MAX_NUMBER = 1_000_000  # fmt's tooLarge


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
    """fmt.Sprintf(template, args...). Raises: UnsupportedFormatError."""
    out: list[str] = []
    index = 0
    position = 0
    while position < len(template):
        percent = template.find("%", position)
        if percent < 0:
            out.append(template[position:])
            break
        out.append(template[position:percent])
        match = _SPEC.match(template, percent)
        assert match is not None  # the pattern matches any text starting with '%'
        flags, width, precision, verb = match.groups()
        position = match.end()
        spec_width, spec_precision = _parse_number(width), _parse_number(precision)
        if spec_width is None or spec_precision is None or verb == "":
            out.append("%!(NOVERB)")  # Go's parsenum skips to the end of a too long number
            break
        if verb in ("[", "*") or "*" in flags:
            raise UnsupportedFormatError("argument indexes and '*' widths")
        if verb == "%":
            out.append("%")
            continue
        if verb == "v":
            flags = flags.replace("+", "")  # Go: %+v is plusV (struct fields), not a sign
        spec = Spec(flags, spec_width or 0, None if precision is None else spec_precision, verb)
        if index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format(spec, args[index]))
        index += 1
    if index < len(args):
        extra = ", ".join(
            f"{_type_name(a)}={_format(Spec('', 0, None, 'v'), a)}" for a in args[index:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _parse_number(digits: str | None) -> int | None:
    """fmt's parsenum: the number, or None once it has grown past 1e6 with digits still to come
    (a host builtin holds the GIL, so `%999999999s` must not build a 1 GB string; Go stops
    there too and prints `%!(NOVERB)`). The largest width Go accepts is 10000009 (10 MB)."""
    number = 0
    for digit in digits or "":
        if number > _MAX_NUMBER:
            return None
        number = number * 10 + int(digit)
    return number


def _type_name(arg: Arg) -> str:
    if isinstance(arg, str):
        return "string"
    if isinstance(arg, float):
        return "float64"
    return "int64" if -(2**63) <= arg < 2**63 else "*big.Int"


def _bad(spec: Spec, arg: Arg) -> str:
    # Go's badVerb prints the operand with %v and the directive's own flags, width, precision.
    # (`#` there is not Go-syntax %#v: a string is not quoted.)
    flags = spec.flags.replace("#", "") if isinstance(arg, str) else spec.flags
    shown = _format(Spec(flags, spec.width, spec.precision, "v"), arg)
    return f"%!{spec.verb}({_type_name(arg)}={shown})"


def _format(spec: Spec, arg: Arg) -> str:
    if isinstance(arg, str):
        return _format_string(spec, arg)
    if isinstance(arg, float):
        return _format_float(spec, arg)
    return _format_int(spec, arg)


def _pad(spec: Spec, body: str, zero_ok: bool = True) -> str:
    if len(body) >= spec.width:
        return body
    fill = spec.width - len(body)
    if spec.has("-"):
        return body + " " * fill
    if zero_ok and spec.has("0"):
        sign = body[0] if body[:1] in ("+", "-", " ") else ""
        return sign + "0" * fill + body[len(sign) :]
    return " " * fill + body


def _format_string(spec: Spec, arg: str) -> str:
    text = arg if spec.precision is None else arg[: spec.precision]
    if spec.verb == "v" and spec.has("#"):
        return _pad(spec, go_quote(text))
    if spec.verb in ("v", "s"):
        return _pad(spec, text)
    if spec.verb == "q":
        if spec.has("#") and _can_backquote(text):
            return _pad(spec, f"`{text}`")
        return _pad(spec, go_quote(text))
    if spec.verb in ("x", "X"):
        return _pad(spec, _hex_string(spec, arg))
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
        if verb in ("s", "v"):
            verb = "d"
        elif verb not in "bdoOxX":
            return f"%!{verb}(big.Int={arg})"
    bases = {"d": 10, "v": 10, "b": 2, "o": 8, "O": 8, "x": 16, "X": 16}
    if verb in bases:
        digits = _digits(abs(arg), bases[verb], upper=verb == "X")
        if spec.precision is not None:
            digits = "" if spec.precision == 0 and arg == 0 else digits.zfill(spec.precision)
        prefix = _int_prefix(spec, verb, arg)
        sign = "-" if arg < 0 else "+" if spec.has("+") else " " if spec.has(" ") else ""
        return _pad(spec, sign + prefix + digits, zero_ok=spec.precision is None)
    if verb == "c":
        return _pad(spec, _rune(arg))
    if verb == "q":
        char = _rune(arg)
        if spec.has("#") and char.isprintable():
            return _pad(spec, f"'{char}'")
        return _pad(spec, go_quote(char, "'"))
    if verb == "U":
        return _pad(spec, _unicode(spec, arg % 2**64))  # Go formats uint64(arg)
    return _bad(spec, arg)


def _rune(code: int) -> str:
    """Go's rune(code), with utf8.RuneError for what is not a Unicode scalar value."""
    valid = 0 <= code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF
    return chr(code) if valid else "\ufffd"


def _unicode(spec: Spec, value: int) -> str:
    text = "U+" + f"{value:X}".zfill(max(4, spec.precision or 0))
    if spec.has("#") and value <= 0x10FFFF and chr(value).isprintable():
        text += f" '{chr(value)}'"
    return text


def _int_prefix(spec: Spec, verb: str, arg: int) -> str:
    if verb == "O":
        return "0o"
    if not spec.has("#"):
        return ""
    return {"b": "0b", "o": "0" if arg != 0 else "", "x": "0x", "X": "0X"}.get(verb, "")


def _digits(value: int, base: int, upper: bool) -> str:
    if base == 10:
        return str(value)
    text = {2: format(value, "b"), 8: format(value, "o"), 16: format(value, "x")}[base]
    return text.upper() if upper else text


def _format_float(spec: Spec, arg: float) -> str:
    verb = "g" if spec.verb == "v" else spec.verb
    if verb not in "eEfFgGxXb":
        return _bad(spec, arg)
    if verb in "xXb" or spec.has("#"):
        raise UnsupportedFormatError(f"%{spec.flags}{verb} of a float")
    if math.isinf(arg) or math.isnan(arg):
        body = "NaN" if math.isnan(arg) else ("+Inf" if arg > 0 else "-Inf")
        if body == "+Inf" and not spec.has("+"):
            body = " Inf" if spec.has(" ") else "Inf"
        return _pad(spec, body, zero_ok=False)
    body = format_float(abs(arg), verb, spec.precision)
    sign = (
        "-"
        if math.copysign(1.0, arg) < 0
        else "+"
        if spec.has("+")
        else " "
        if spec.has(" ")
        else ""
    )
    return _pad(spec, sign + body)
