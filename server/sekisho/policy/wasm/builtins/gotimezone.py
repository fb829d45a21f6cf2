"""Time zones in a time.parse_ns value as Go's parse reads them (src/time/format.go): the
numeric forms (-0700, -07:00, -07, -070000, -07:00:00 and their Z variants) and abbreviations
(parseTimeZone, parseGMT, parseSignedOffset).

Go looks an abbreviation up in the process's local zone. Only a local zone of UTC is
reproduced: then `UTC` is UTC and any other abbreviation (`GMT+3` included) only names a
fabricated zone, leaving the wall time read as UTC. On a host whose local zone is not UTC a
value with an abbreviation raises TimeLayoutUnsupportedError, which traps the evaluation.
"""

import time

from sekisho.policy.wasm.builtins.gotimebytes import TimeParseError, getnum, leading_int


class TimeLayoutUnsupportedError(Exception):
    """A value Go would read against the host's local zone, which is not UTC here."""


def read_numeric_zone(element: str, value: bytes) -> tuple[int, bytes]:
    """(seconds east of UTC, rest) for a numeric zone element (`-0700`, `Z07:00`, ...; the
    `Z` of the ISO forms is the caller's). Go's range checks allow 24 hours, 60 minutes and
    60 seconds. Raises: TimeParseError."""
    shape = element[1:]
    length = 1 + len(shape)
    if len(value) < length:
        raise TimeParseError
    chunk = value[:length]
    colons = [i for i, c in enumerate(shape, start=1) if c == ":"]
    if any(chunk[i : i + 1] != b":" for i in colons):
        raise TimeParseError
    digits = bytes(c for i, c in enumerate(chunk[1:], start=1) if i not in colons)
    parts = [digits[i : i + 2] for i in range(0, len(digits), 2)] + [b"00", b"00"]
    hours, minutes, seconds = (getnum(part, fixed=True)[0] for part in parts[:3])
    if hours > 24 or minutes > 60 or seconds > 60 or chunk[:1] not in (b"+", b"-"):
        raise TimeParseError
    offset = (hours * 60 + minutes) * 60 + seconds
    return (-offset if chunk[:1] == b"-" else offset), value[length:]


def read_abbreviation(value: bytes) -> tuple[bool, bytes]:
    """(whether it is UTC, rest) for `MST`: `UTC`, else a name as Go's parseTimeZone takes it,
    which changes nothing when the local zone is UTC (module docstring).

    Raises: TimeParseError, TimeLayoutUnsupportedError."""
    if value[:3] == b"UTC":
        return True, value[3:]
    length = _zone_name_length(value)
    if length == 0:
        raise TimeParseError
    if not _local_is_utc():
        raise TimeLayoutUnsupportedError(
            "time.parse_ns: zone abbreviations are read in the host's local zone, not UTC here"
        )
    return False, value[length:]


def _zone_name_length(value: bytes) -> int:
    """Go's parseTimeZone: the length of a zone abbreviation at the start of value, or 0."""
    if len(value) < 3:
        return 0
    if value[:4] in (b"ChST", b"MeST"):
        return 4
    if value[:3] == b"GMT":
        return 3 + _signed_offset_length(value[3:]) if len(value) > 3 else 3
    if value[:1] in (b"+", b"-"):
        return _signed_offset_length(value)
    return _upper_case_length(value)


def _upper_case_length(value: bytes) -> int:
    """Three upper-case letters, or four or five ending in T (and WITA)."""
    upper = 0
    while upper < min(6, len(value)) and 0x41 <= value[upper] <= 0x5A:
        upper += 1
    if upper == 3:
        return 3
    if upper == 4 and (value[3:4] == b"T" or value[:4] == b"WITA"):
        return 4
    return 5 if upper == 5 and value[4:5] == b"T" else 0


def _signed_offset_length(value: bytes) -> int:
    if value[:1] not in (b"+", b"-"):
        return 0
    try:
        number, rest = leading_int(value[1:])
    except TimeParseError:
        return 0
    # -23..+23 in Go 1.26 (parseSignedOffset; older Go took -12..+12), the Go OPA 1.22.2 uses
    return 0 if rest == value[1:] or number > 23 else len(value) - len(rest)


def _local_is_utc() -> bool:
    return time.timezone == 0 and time.altzone == 0 and not time.daylight
