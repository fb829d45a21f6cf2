"""regex.replace, regex.split, regex.find_n, regex.template_match and regex.globs_match
(topdown/regex.go), the regex builtins OPA's Wasm target leaves to the host, with Go's regexp
semantics: ReplaceAllString (with Regexp.Expand's `$1` / `${name}` templates), Split(s, -1),
FindAllString(s, n) over UTF-8 bytes, a delimiter template (regextemplate) matched as Go's
MatchString, and glob-intersection's NonEmpty (globintersect).

Each builtin set owns its compiled-pattern cache (bounded, as OPA's is), so nothing is shared
between loaded policies.
"""

import unicodedata
from collections.abc import Iterator
from typing import Any

from sekisho.policy.wasm.builtins import globintersect, regextemplate
from sekisho.policy.wasm.builtins.goregexp import GoRegexp, RegexCache, Span
from sekisho.policy.wasm.builtins.operands import int_operand
from sekisho.policy.wasm.builtins.registry import BuiltinError, HostBuiltin


class RegexBuiltins:
    """The host regex builtins over one pattern cache."""

    def __init__(self, cache_size: int = 100) -> None:
        self.cache = RegexCache(cache_size)

    def builtins(self) -> tuple[HostBuiltin, ...]:
        return (
            HostBuiltin("regex.replace", self.replace),
            HostBuiltin("regex.split", self.split),
            HostBuiltin("regex.find_n", self.find_n, rego_text=True),
            HostBuiltin("regex.template_match", self.template_match),
            HostBuiltin("regex.globs_match", globs_match),
        )

    def replace(self, base: Any, pattern: Any, value: Any) -> str:
        """Go's Regexp.ReplaceAllString(base, value)."""
        _strings("regex.replace", base, pattern, value)
        regexp = self.cache.get(pattern)
        src, template = base.encode(), value
        out, last_end, search = [], 0, 0
        while search <= len(src):
            spans = regexp.search(src, search)
            if spans is None:
                break
            start, end = spans[0]
            out.append(src[last_end:start])
            # No replacement for an empty match right after the previous match (Go: "a[1] >
            # lastMatchEnd || a[0] == 0"), else `a*` would replace twice around each run.
            if end > last_end or start == 0:
                out.append(expand(regexp, template, src, spans))
            last_end = end
            width = _rune_width(src, search)
            search = search + width if search + width > end else max(search + 1, end)
        out.append(src[last_end:])
        return b"".join(out).decode()

    def split(self, pattern: Any, text: Any) -> list[str]:
        """Go's Regexp.Split(text, -1)."""
        _strings("regex.split", pattern, text)
        regexp = self.cache.get(pattern)
        if pattern and not text:
            return [""]
        src = text.encode()
        parts, begin, end = [], 0, 0
        for start, stop in _all_matches(regexp, src, len(src) + 1):
            end = start
            if stop != 0:
                parts.append(src[begin:end])
            begin = stop
        if end != len(src):
            parts.append(src[begin:])
        return [part.decode() for part in parts]

    def find_n(self, pattern: Any, text: Any, count: Any) -> list[str]:
        """Go's Regexp.FindAllString(text, n); n < 0 means all. Operands as Rego values
        (rego_text): n is read from its text as OPA's IntOperand reads it."""
        _strings("regex.find_n", pattern, text)
        limit = int_operand(count, "regex.find_n")
        regexp = self.cache.get(pattern)
        src = text.encode()
        if limit < 0:
            limit = len(src) + 1
        return [src[start:stop].decode() for start, stop in _all_matches(regexp, src, limit)]

    def template_match(self, template: Any, value: Any, start: Any, end: Any) -> bool:
        """builtinRegexMatchTemplate: delimiters of exactly one byte, then the generated
        pattern (cached by its text, as OPA caches it) against `value`, unanchored as
        MatchString (the pattern carries `^` and `$`)."""
        _strings("regex.template_match", template, value, start, end)
        if len(start.encode()) != 1 or len(end.encode()) != 1:
            raise BuiltinError("regex.template_match: delimiters must be one byte long")
        pattern = regextemplate.generate(template, start, end, self.cache.get)
        return self.cache.get(pattern).search(value.encode(), 0) is not None


def globs_match(glob1: Any, glob2: Any) -> bool:
    """builtinGlobsMatch: gintersect.NonEmpty(glob1, glob2)."""
    _strings("regex.globs_match", glob1, glob2)
    return globintersect.non_empty(glob1, glob2)


def _all_matches(regexp: GoRegexp, src: bytes, limit: int) -> Iterator[Span]:
    """Go's Regexp.allMatches: successive matches, an empty one right after a match skipped."""
    pos, found, previous_end = 0, 0, -1
    while found < limit and pos <= len(src):
        spans = regexp.search(src, pos)
        if spans is None:
            return
        start, end = spans[0]
        accept = True
        if end == pos:  # an empty match
            accept = start != previous_end
            width = _rune_width(src, pos)
            pos = pos + width if width > 0 else len(src) + 1
        else:
            pos = end
        previous_end = end
        if accept:
            found += 1
            yield start, end


def expand(regexp: GoRegexp, template: str, src: bytes, spans: list[Span]) -> bytes:
    """Go's Regexp.Expand: `$$` is `$`; `$name` / `${name}` (longest run of letters, digits
    and `_`) is the group by number (decimal, no leading zero) or the first matched group of
    that name, empty when unknown or unset; a `$` not followed by a valid name is text."""
    out, rest = [], template
    while (dollar := rest.find("$")) >= 0:
        out.append(rest[:dollar].encode())
        rest = rest[dollar + 1 :]
        if rest.startswith("$"):
            out.append(b"$")
            rest = rest[1:]
            continue
        extracted = _extract(rest)
        if extracted is None:
            out.append(b"$")
            continue
        name, rest = extracted
        group = _group_number(name)
        if group < 0:  # the first group of that name that matched
            named = (i for i, n in enumerate(regexp.group_names) if n == name and spans[i][0] >= 0)
            group = next(named, -1)
        if 0 <= group < len(spans) and spans[group][0] >= 0:
            out.append(src[spans[group][0] : spans[group][1]])
    out.append(rest.encode())
    return b"".join(out)


def _extract(text: str) -> tuple[str, str] | None:
    """Go's regexp.extract: (name, rest after it) or None when malformed."""
    brace = text.startswith("{")
    body = text[1:] if brace else text
    length = 0
    while length < len(body) and _is_name_char(body[length]):
        length += 1
    if length == 0:
        return None
    if brace:
        if length >= len(body) or body[length] != "}":
            return None
        return body[:length], body[length + 1 :]
    return body[:length], body[length:]


def _is_name_char(char: str) -> bool:
    """Go's unicode.IsLetter || unicode.IsDigit || '_'."""
    return char == "_" or char.isalpha() or unicodedata.category(char) == "Nd"


def _group_number(name: str) -> int:
    """The group number `name` spells (ASCII digits, no leading zero, below 1e8), else -1."""
    number = 0
    for char in name:
        if not "0" <= char <= "9" or number >= 10**8:
            return -1
        number = number * 10 + ord(char) - ord("0")
    return -1 if name[0] == "0" and len(name) > 1 else number


def _rune_width(src: bytes, pos: int) -> int:
    """utf8.DecodeRune's width at `pos` of valid UTF-8 (0 at the end)."""
    if pos >= len(src):
        return 0
    lead = src[pos]
    return 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4


def _strings(name: str, *values: Any) -> None:
    if not all(isinstance(value, str) for value in values):
        raise BuiltinError(f"{name}: operands must be strings")
