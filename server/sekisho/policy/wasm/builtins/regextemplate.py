"""The pattern regex.template_match compiles (topdown/regex_template.go, forked from gorilla/mux):
the text between first-level delimiters is a regular expression, the rest is literal.

`urn:{[a-z]+}:x` with `{` `}` becomes `^urn:([a-z]+):x$`. Delimiters are single bytes compared
byte by byte, nested ones are counted (only the outermost pair delimits), and unbalanced ones
are an error. Each expression must compile on its own as `^expr$` (so `a)(b` is refused even
though `(a)(b)` would compile); the literal text is quoted as Go's regexp.QuoteMeta quotes it.
"""

from collections.abc import Callable

from sekisho.policy.wasm.builtins.registry import BuiltinError

_GO_SPECIAL = frozenset("\\.+*?()|[]{}^$")  # regexp.QuoteMeta's special bytes


def quote_meta(text: str) -> str:
    """Go's regexp.QuoteMeta: a backslash before each special ASCII character."""
    return "".join("\\" + char if char in _GO_SPECIAL else char for char in text)


def delimiter_indices(template: str, start: str, end: str) -> list[int]:
    """delimiterIndices: (start, end + 1) of each first-level delimited part. Where the two
    delimiters are the same character, it only ever opens (Go's switch tries `start` first).
    Raises: BuiltinError (unbalanced)."""
    level, opened, indices = 0, 0, []
    for i, char in enumerate(template):
        if char == start:
            level += 1
            if level == 1:
                opened = i
        elif char == end:
            level -= 1
            if level == 0:
                indices += [opened, i + 1]
            elif level < 0:
                raise BuiltinError(f"unbalanced braces in {template!r}")
    if level != 0:
        raise BuiltinError(f"unbalanced braces in {template!r}")
    return indices


def generate(template: str, start: str, end: str, check: Callable[[str], object]) -> str:
    """generateRegexTemplate: the whole pattern; `check` compiles each part as `^part$`.
    Raises: BuiltinError (unbalanced delimiters, a part that does not compile)."""
    indices = delimiter_indices(template, start, end)
    out, done = ["^"], 0
    for opened, closed in zip(indices[::2], indices[1::2], strict=True):
        part = template[opened + 1 : closed - 1]
        out.append(f"{quote_meta(template[done:opened])}({part})")
        check(f"^{part}$")
        done = closed
    out.append(quote_meta(template[done:]) + "$")
    return "".join(out)
