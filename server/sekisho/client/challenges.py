"""WWW-Authenticate challenges as RFC 9110 §11.6.1 writes them: a response may carry several
headers, and each header several challenges separated by commas, the same commas that separate
a challenge's parameters.

    WWW-Authenticate = [ challenge *( OWS "," OWS challenge ) ]
    challenge  = auth-scheme [ 1*SP ( token68 / [ auth-param *( OWS "," OWS auth-param ) ] ) ]
    auth-param = token BWS "=" BWS ( token / quoted-string )

A token followed by "=" is a parameter of the challenge before it; any other token starts a new
challenge. Scheme and parameter names are case-insensitive (read lower case); values are kept as
sent, quoted-string escapes undone. Parsing stops at the first malformed part of a header value;
the challenges read before it are kept, and the other headers are read on their own.
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r"\\(.)")
_OWS = re.compile(r"[ \t]*")
_SEPARATORS = re.compile(r"[ \t,]*")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge: its scheme and parameters (names lower case), or its token68."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str = ""


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """Every challenge of every header value (`httpx.Headers.get_list("WWW-Authenticate")`)."""
    return [challenge for value in values for challenge in _parse(value)]


def _parse(value: str) -> list[Challenge]:
    found: list[tuple[str, dict[str, str], str]] = []  # scheme, params, token68
    pos, end = 0, len(value)
    while (pos := _skip(_SEPARATORS, value, pos)) < end:
        name = _TOKEN.match(value, pos)
        if name is None:
            break
        after = _skip(_OWS, value, name.end())
        if found and after < end and value[after] == "=":
            param = _param_value(value, after + 1)
            if param is None:
                break
            text, pos = param
            # RFC 9110: a name occurs once per challenge; a repeat does not replace the first.
            found[-1][1].setdefault(name.group().lower(), text)
            continue
        pos = name.end()
        token68 = _TOKEN68.match(value, after) if after > pos else None
        found.append((name.group().lower(), {}, token68.group() if token68 else ""))
        if token68 is not None:
            pos = token68.end()
    return [Challenge(scheme, params, token68) for scheme, params, token68 in found]


def _param_value(value: str, pos: int) -> tuple[str, int] | None:
    """A parameter's value after its "=" (token or quoted-string) and where it ends."""
    pos = _skip(_OWS, value, pos)
    quoted = _QUOTED.match(value, pos)
    if quoted is not None:
        return _ESCAPE.sub(r"\1", quoted.group(1)), quoted.end()
    token = _TOKEN.match(value, pos)
    return (token.group(), token.end()) if token is not None else None


def _skip(pattern: re.Pattern[str], value: str, pos: int) -> int:
    """Where `pattern` (one that may match nothing) ends from `pos`."""
    matched = pattern.match(value, pos)
    return matched.end() if matched is not None else pos
