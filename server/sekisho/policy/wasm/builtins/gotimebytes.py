"""Go's time-package readers over UTF-8 bytes (src/time/format.go: getnum, getnum3,
leadingInt, atoi, lookup and its ASCII case folding), for time.parse_ns."""


class TimeParseError(Exception):
    """Go's errBad or a range error: time.Parse fails (OPA: undefined)."""


def digit(value: bytes, index: int) -> bool:
    return index < len(value) and 0x30 <= value[index] <= 0x39


def getnum(value: bytes, fixed: bool) -> tuple[int, bytes]:
    """Go's getnum: two digits, or one when the layout's element is not zero-padded."""
    if not digit(value, 0):
        raise TimeParseError
    if not digit(value, 1):
        if fixed:
            raise TimeParseError
        return value[0] - 0x30, value[1:]
    return (value[0] - 0x30) * 10 + value[1] - 0x30, value[2:]


def getnum3(value: bytes, fixed: bool) -> tuple[int, bytes]:
    count = 0
    while count < 3 and digit(value, count):
        count += 1
    if count == 0 or (fixed and count != 3):
        raise TimeParseError
    return int(value[:count]), value[count:]


def leading_int(value: bytes) -> tuple[int, bytes]:
    count = 0
    while digit(value, count):
        count += 1
    number = int(value[:count]) if count else 0
    if number > 1 << 63:
        raise TimeParseError
    return number, value[count:]


def atoi(value: bytes) -> int:
    """Go's time.atoi: an optional sign, then only digits (none is 0)."""
    negative = value[:1] == b"-"
    number, rest = leading_int(value[1:] if value[:1] in (b"-", b"+") else value)
    if rest:
        raise TimeParseError
    return -number if negative else number


def lookup(table: tuple[bytes, ...], value: bytes) -> tuple[int, bytes]:
    """Go's lookup: the first name the value starts with, ASCII letters case-insensitive."""
    for index, name in enumerate(table):
        if len(value) >= len(name) and _match(value[: len(name)], name):
            return index, value[len(name) :]
    raise TimeParseError


def _match(left: bytes, right: bytes) -> bool:
    for a, b in zip(left, right, strict=True):
        if a != b and ((a | 0x20) != (b | 0x20) or not 0x61 <= (a | 0x20) <= 0x7A):
            return False
    return True
