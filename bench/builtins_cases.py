"""Generated inputs for bench/builtins_differential.py: one family per builtin call shape, each
case a JSON text (number texts kept as written). Seeded; `scale` multiplies the random parts."""

import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sekisho.clock import SystemClock
from sekisho.policy.wasm.builtins.regotext import Number
from sekisho.policy.wasm.builtins.timeformat import NAMED_LAYOUTS
from sekisho.policy.wasm.builtins.times import time_builtins

_FORMAT = next(b.call for b in time_builtins(SystemClock()) if b.name == "time.format")

# `v(family, i, j, x)`: an operand given as {"$set": [...]} becomes a set, {"$keys": [...]} an
# object whose keys are the array's indexes (numbers); anything else is passed as is. The family,
# case and operand indexes keep OPA's function cache from answering v(1.00) with v(1)'s result
# (1.00 == 1).
PRELUDE = """v(_, _, _, x) := {y | some y in x["$set"]} if {
\tis_object(x)
\tis_array(x["$set"])
} else := {i: y | some i, y in x["$keys"]} if {
\tis_object(x)
\tis_array(x["$keys"])
} else := x

"""


@dataclass(frozen=True)
class Family:
    name: str
    expression: str  # Rego, over the case `c` (index `i`); V(j, x) is v(<family>, i, j, x)
    cases: list[str]


def j(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


NUMBER_TEXTS = [
    "0", "-0", "0.0", "-0.0", "1", "-1", "1.0", "1.00", "1e1", "1E1", "1e+1", "10e-1", "0.5e1",
    "1.5", "-1.5", "0.1", "2.5", "3.141592653589793", "1e6", "1e20", "1e21", "1E21", "1e-7",
    "1.5e-7", "123456.789", "1e400", "-1e400", "1e-400", "255", "65", "1024", "-300",
    "9007199254740993", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551616", "123456789012345678901234567890",
    "1.7976931348623157e308", "5e-324", "2e308", "0.000001", "100000000000000000000.5",
]  # fmt: skip
STRINGS = [
    "", "a", "abc", "Grüße", 'q"uote', "tab\there", "line\nbreak", "😀", "a\u0301", "%", "%d",
    "\u0000", "\u007f", "\ufffd", "x" * 20, "-", "+1", " 1", "1 ", "0x1F", "١٢٣",
]  # fmt: skip
COMPOSITES = [
    "true", "false", "null", "[]", '[1,"a"]', "{}", '{"k":1}', '{"b":[1,2],"a":{"c":null}}',
    '{"$set":[]}', '{"$set":[3,1,2]}', '{"$set":["b","a",null,1]}', '{"$set":[[1],{"a":1}]}',
    '{"$keys":["x","y"]}', '{"$keys":[{"a":1}]}',
    '[1e21, -0, 1.0, 1E2, 18446744073709551616, 0.1, 1e400, -0.0]', '{"$set":[1.0, 1, -0, 0]}',
    '{"x": 1e400, "y": 1.50, "z": [1e-7]}', '{"a\\"b": "\\u0000", "é": "😀\\n"}',
    '{"$set":[{"$set":[1]}, "\\t", 1e1, 10]}', '[{"b": 1, "a": [true, null]}, []]',
]  # fmt: skip
ANY = NUMBER_TEXTS + [j(s) for s in STRINGS] + COMPOSITES

ZONES = [
    "", "UTC", "Local", "America/New_York", "Europe/London", "Europe/Dublin", "Europe/Paris",
    "Australia/Lord_Howe", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Apia", "Pacific/Kiritimati",
    "Pacific/Chatham", "America/St_Johns", "Africa/Casablanca", "Antarctica/Troll",
    "America/Sao_Paulo", "Europe/Moscow", "Asia/Tokyo", "America/Los_Angeles", "Etc/GMT+12",
    "Etc/GMT-14", "EST", "EST5EDT", "CET", "GMT", "Etc/UTC", "Zulu", "US/Pacific",
    "America/Argentina/Buenos_Aires", "Asia/Gaza", "America/Godthab", "Pacific/Pago_Pago",
]  # fmt: skip
BAD_ZONES = [
    "utc", "Nowhere/Else", "America/New_York ", "../zoneinfo/UTC", "/etc/localtime",
    "America//New_York", "posixrules", "Factory", "localtime", "+05:00", "UTC+1", "right/UTC",
    "posix/Europe/Paris", "zone.tab", "tzdata.zi", "leapseconds", "America", "local", "Z",
    "America/New_York/", "./UTC", "Etc/GMT+13", "GMT0", "Etc/GMT-0",
]  # fmt: skip
DST_ZONES = [
    "America/New_York", "Europe/London", "Europe/Dublin", "Australia/Lord_Howe", "Pacific/Apia",
    "Pacific/Chatham", "America/St_Johns", "Africa/Casablanca", "Antarctica/Troll",
    "America/Sao_Paulo", "Asia/Gaza", "America/Los_Angeles", "Europe/Moscow", "Asia/Kolkata",
]  # fmt: skip
MIN_NS, MAX_NS = -(2**63), 2**63 - 1
NS_TEXTS = [
    "0", "-0", "0.0", "1e9", "1E9", "1.0e9", "1e18", "1.7e18", "-1.7e18", "9.2e18", "-9.2e18",
    "9.3e18", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "9.223372036854775807e18", "1.5", "1e-9", "-1", "951782400e9",
    "4102444800000000000", "1e19", "0.5e1", "1e0", "-1e0", "1e400", "-1e400", "1e-400",
]  # fmt: skip


def transitions(zone: str, first: int, last: int) -> list[int]:
    """UTC seconds at which the zone's offset changes between two years (Python's tz data)."""
    tz = ZoneInfo(zone)
    out, previous = [], None
    moment = datetime(first, 1, 1, tzinfo=UTC)
    while moment.year < last:
        offset = moment.astimezone(tz).utcoffset()
        if previous is not None and offset != previous:
            low, high = moment - timedelta(hours=6), moment
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                middle = middle.replace(microsecond=0)
                if middle.astimezone(tz).utcoffset() == offset:
                    high = middle
                else:
                    low = middle
            out.append(int(high.timestamp()))
        previous = offset
        moment += timedelta(hours=6)
    return out


def edge_instants(rng: random.Random) -> list[tuple[int, str]]:
    """(ns, zone) around DST transitions, leap days, month ends and the int64 limits."""
    out = []
    for zone in DST_ZONES:
        for year_span in ((1970, 1972), (2000, 2001), (2024, 2025), (2037, 2039)):
            for instant in transitions(zone, *year_span)[:4]:
                for delta in (-3601, -3600, -1801, -1, 0, 1, 1799, 3599, 3600, 86400):
                    out.append(((instant + delta) * 10**9 + rng.choice([0, 1, 999999999]), zone))
    for day in ("1900-02-28", "2000-02-29", "2100-02-28", "2024-02-29", "2023-12-31", "1999-12-31"):
        base = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())
        for delta in (0, 86399, 86400, -1):
            out.append(((base + delta) * 10**9, rng.choice(["", "UTC", *DST_ZONES])))
    for ns in (MIN_NS, MIN_NS + 1, MAX_NS, MAX_NS - 1, -1, 0, 1, -(10**18) * 9, 10**18 * 9):
        out.extend((ns, zone) for zone in ("", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kolkata"))
    return out


def moment_texts(rng: random.Random, count: int) -> list[str]:
    """Time operands: ns (as a number text) or [ns, zone] / [ns, zone, layout]."""
    out = [j([ns, zone]) for ns, zone in edge_instants(rng)]
    out += [f"[{text}, {j(zone)}]" for text in NS_TEXTS for zone in ("", "America/New_York")]
    out += NS_TEXTS
    out += [j([0, zone]) for zone in ZONES + BAD_ZONES]
    out += [j([10**18, zone]) for zone in ZONES + BAD_ZONES]
    out += ["[]", "[0, 1]", "[0, null]", '"0"', "null", '[0, "UTC", 1]', '[0, "UTC", "x", 4]']
    for _ in range(count):
        ns = rng.randint(MIN_NS, MAX_NS)
        out.append(j([ns, rng.choice(ZONES)]) if rng.random() < 0.7 else str(ns))
    return out


DELTAS = [
    "0", "1", "-1", "11", "12", "13", "-12", "-13", "100", "292", "293", "-292", "-293", "400",
    "1000", "146097", "-146097", "106751", "106752", "-106752", "2147483647", "2147483648",
    "-2147483648", "-2147483649", "4294967296", "9007199254740993", "4611686018427387904",
    "9223372036854775807", "-9223372036854775808", "292277022400", "-292277022400",
    "292277026596", "1.0", "1e1", "1.5", "9223372036854775808", "null", '"1"',
]  # fmt: skip


def add_date_cases(rng: random.Random, count: int) -> list[str]:
    instants = edge_instants(rng)
    out = []
    for _ in range(count):
        ns, zone = (
            rng.choice(instants)
            if rng.random() < 0.6
            else (rng.randint(-(10**18), 10**18), rng.choice(ZONES))
        )
        deltas = [rng.choice(DELTAS) if rng.random() < 0.4 else "0" for _ in range(3)]
        if rng.random() < 0.2:
            deltas[rng.randrange(3)] = str(rng.randint(MIN_NS, MAX_NS))
        if rng.random() < 0.2:
            deltas[rng.randrange(3)] = str(rng.randint(-2000, 2000))
        out.append(
            f'{{"t": {j([ns, zone])}, "y": {deltas[0]}, "m": {deltas[1]}, "d": {deltas[2]}}}'
        )
    out += wrapping_add_dates(rng, count // 10)
    return out


def wrapping_add_dates(rng: random.Random, count: int) -> list[str]:
    """Huge day deltas chosen so that Go's int64 arithmetic wraps back into the ns range."""
    out = []
    for _ in range(count):
        ns = rng.randint(-(10**17), 10**17) // 10**9 * 10**9
        start = datetime.fromtimestamp(ns // 10**9, UTC)
        # unix = (absdays(y, m, 1) + day - 1) * 86400 + seconds_of_day + absoluteToUnix, mod 2^64
        base = _unix_of_day_one(start)
        target = rng.randint(-(2**62), 2**62) // 10**9  # unix seconds, ≡ base mod 128
        target -= (target - base) % 128
        rest = (target - base) % 2**64
        quotient = (rest // 128) * pow(675, -1, 2**57) % 2**57
        day = quotient + rng.randrange(128) * 2**57  # any of the 128 solutions mod 2^64
        days = (day - start.day + 1 + 2**63) % 2**64 - 2**63
        out.append(f'{{"t": {j([ns, ""])}, "y": 0, "m": 0, "d": {days}}}')
    return out


def _unix_of_day_one(moment: datetime) -> int:
    """Go's unix seconds for the moment's month's day 1 + 1 (day-1 term zero), mod 2^64."""
    first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
    seconds = moment.hour * 3600 + moment.minute * 60 + moment.second
    return int(first.timestamp()) - 86400 + seconds


def diff_cases(rng: random.Random, count: int) -> list[str]:
    instants = edge_instants(rng)
    out = []
    for _ in range(count):
        (a, zone), (b, _) = rng.choice(instants), rng.choice(instants)
        if rng.random() < 0.5:
            b = a + rng.choice([1, -1, 86400, 3600, 31 * 86400, 366 * 86400]) * 10**9
            b = min(max(b, MIN_NS), MAX_NS)
        out.append(f'{{"a": {j([a, zone])}, "b": {j(b) if rng.random() < 0.5 else j([b, zone])}}}')
    out += [f'{{"a": {x}, "b": 0}}' for x in NS_TEXTS]
    return out


LAYOUT_TOKENS = [
    "2006", "06", "January", "Jan", "1", "01", "Monday", "Mon", "2", "_2", "02", "__2", "002",
    "15", "3", "03", "4", "04", "5", "05", "PM", "pm", "MST", "Z07:00", "Z0700", "Z07",
    "Z07:00:00", "Z070000", "-07:00", "-0700", "-07", "-07:00:00", "-070000", ".000", ".999",
    ",000", ",999", ".0", ".9", ".000000000", ".999999999", ".0000000000", "T", " ", ":", "-",
    "/", "x", "Jan2", "200", "20066", "Januaryx", "Mond", "MSTx", "ZZ", "007", "1234",
]  # fmt: skip
NAMED = [
    "ANSIC", "UnixDate", "RubyDate", "RFC822", "RFC822Z", "RFC850", "RFC1123", "RFC1123Z",
    "RFC3339", "RFC3339Nano", "Kitchen", "Stamp", "StampMilli", "StampMicro", "StampNano",
    "DateTime", "DateOnly", "TimeOnly", "", "rfc3339", "Layout",
]  # fmt: skip


def layouts(rng: random.Random, count: int) -> list[str]:
    out = list(NAMED) + list(LAYOUT_TOKENS)
    for _ in range(count):
        out.append("".join(rng.choice(LAYOUT_TOKENS) for _ in range(rng.randint(1, 6))))
    return out


def format_cases(rng: random.Random, count: int) -> list[str]:
    instants = edge_instants(rng)
    shapes = layouts(rng, count)
    out = []
    for layout in shapes:
        ns, zone = rng.choice(instants)
        out.append(j([ns, zone, layout]))
    for _ in range(count):
        ns, zone = rng.choice(instants)
        out.append(j([ns, zone, rng.choice(NAMED)]))
    return out


MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]  # fmt: skip
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _printed(rng: random.Random, layout: str, instant: tuple[int, str]) -> str:
    formatted = _FORMAT([Number(str(instant[0])), instant[1], NAMED_LAYOUTS.get(layout, layout)])
    return str(formatted)


def token_value(rng: random.Random, token: str) -> str:
    """A plausible (sometimes wrong) text for one layout token."""
    year = rng.choice(
        [1677, 1678, 1970, 2000, 2024, 2100, 2262, 2263, 0, 9999, rng.randint(1, 9999)]
    )
    values = {
        "2006": [f"{year:04d}", str(year), "-001"],
        "06": [f"{year % 100:02d}", "7", "69", "68"],
        "January": [rng.choice(MONTHS), rng.choice(MONTHS).upper(), "Janu"],
        "Jan": [rng.choice(MONTHS)[:3], rng.choice(MONTHS)[:3].lower(), "Sept"],
        "1": [str(rng.randint(0, 13))],
        "01": [f"{rng.randint(0, 13):02d}", "1"],
        "Monday": [rng.choice(DAYS), "monday"],
        "Mon": [rng.choice(DAYS)[:3], "Thurs"],
        "2": [str(rng.randint(0, 32))],
        "_2": [f"{rng.randint(1, 31):2d}", " 9", "9"],
        "02": [f"{rng.randint(0, 32):02d}", "2"],
        "__2": [f"{rng.randint(1, 366):3d}"],
        "002": [f"{rng.randint(0, 367):03d}", "60"],
        "15": [str(rng.randint(0, 24)), f"{rng.randint(0, 23):02d}"],
        "3": [str(rng.randint(0, 13))],
        "03": [f"{rng.randint(0, 13):02d}"],
        "4": [str(rng.randint(0, 60))],
        "04": [f"{rng.randint(0, 60):02d}"],
        "5": [str(rng.randint(0, 61))],
        "05": [f"{rng.randint(0, 60):02d}", "60"],
        "PM": ["PM", "AM", "pm", "am", "XM"],
        "pm": ["pm", "am", "PM"],
        "MST": ["UTC", "EST", "GMT", "GMT+3", "GMT-11", "ChST", "XYZ", "CEST", "Z", "UT"],
        "Z07:00": ["Z", "+05:30", "-24:00", "+00:00", "-23:59", "+1:00"],
        "Z0700": ["Z", "+0530", "-2400"],
        "Z07": ["Z", "+05", "-99"],
        "-07:00": ["+05:30", "-00:00", "Z"],
        "-0700": ["+0530", "-1260"],
        "-07": ["+05", "-12"],
        "Z07:00:00": ["Z", "+05:30:15"],
        "Z070000": ["Z", "+053015"],
        "-07:00:00": ["+05:30:15"],
        "-070000": ["+053015"],
        ".000": [".123", ".1", ""],
        ".999": [".5", "", ".123456789"],
        ",000": [",123"],
        ",999": [",5", ""],
        ".0": [".1"],
        ".9": [".9", ""],
        ".000000000": [".123456789"],
        ".999999999": [".000000001", ".1234567891"],
        ".0000000000": [".1234567890"],
    }
    return rng.choice(values.get(token, [token]))


def parse_ns_cases(rng: random.Random, count: int) -> list[str]:
    """Half: token values drawn at random (mostly refused); half: a time printed through the
    layout (by the embedded time.format: OPA judges both) and sometimes mutated."""
    out = []
    tokens = [
        t
        for t in LAYOUT_TOKENS
        if t not in ("Jan2", "200", "20066", "Januaryx", "Mond", "MSTx", "ZZ", "007", "1234")
    ]
    iso = ["2006", "-", "01", "-", "02", "T", "15", ":", "04", ":", "05"]
    instants = edge_instants(rng)
    for index in range(count):
        chosen = [rng.choice(tokens) for _ in range(rng.randint(1, 7))]
        if rng.random() < 0.5:
            chosen = [*iso, rng.choice(tokens)]
        layout = "".join(chosen)
        if index % 2:
            value = "".join(token_value(rng, t) for t in chosen)
        else:
            layout = rng.choice([layout, rng.choice(NAMED)])
            value = _printed(rng, layout, rng.choice(instants))
        if rng.random() < 0.15:
            cut = rng.randrange(len(value) + 1)
            value = value[:cut] + rng.choice([" ", ".5", "Z", "x", "", "0"]) + value[cut + 1 :]
        out.append(j({"l": layout, "v": value}))
    for name in NAMED:
        out.append(j({"l": name, "v": "2024-02-29T12:00:00Z"}))
        out.append(j({"l": name, "v": "Mon Jan  2 15:04:05 2006"}))
    out += ['{"l": 1, "v": "x"}', '{"l": "2006", "v": 2006}']
    return out


def rfc3339_texts(rng: random.Random, count: int) -> list[str]:
    fixed = [
        "2262-04-11T23:47:16.854775807Z", "2262-04-11T23:47:16.854775808Z",
        "1677-09-21T00:12:43.145224192Z", "1677-09-21T00:12:43.145224191Z",
        "2262-04-12T00:47:16.854775807+01:00", "1677-09-20T23:12:43.145224192-01:00",
        "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2016-12-31T23:59:60Z",
        "1900-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "2100-02-29T00:00:00Z",
        "2024-02-29T00:00:00.1234567891234Z", "2024-01-01t00:00:00z", "2024-01-01T00:00:00+23:59",
        "2024-01-01T00:00:00+24:00", "2024-01-01T00:00:00-00:60", "2024-01-01T00:00:00.Z",
        "2024-01-01T00:00:00,5Z", "2024-01-01T9:00:00Z", "2024-1-01T00:00:00Z",
        " 2024-01-01T00:00:00Z",
        "+2024-01-01T00:00:00Z", "20240-01-01T00:00:00Z",
        "2024-01-01T00:00:00.000000000000000000001Z",
    ]  # fmt: skip
    out = [j(t) for t in fixed]
    for _ in range(count):
        year = rng.choice([1677, 1678, 2261, 2262, 1970, 2024, rng.randint(0, 9999)])
        month, day = rng.randint(0, 13), rng.choice([0, 1, 28, 29, 30, 31, 32])
        zone = rng.choice(["Z", "+00:00", "-12:00", "+14:00", "+05:45", "-00:30"])
        fraction = rng.choice(
            ["", ".0", f".{rng.randint(0, 10**9):09d}", f".{rng.randint(0, 10**12)}"]
        )
        hour, minute, second = (rng.randint(0, n) for n in (24, 60, 60))
        clock = f"{hour:02d}:{minute:02d}:{second:02d}"
        out.append(j(f"{year:04d}-{month:02d}-{day:02d}T{clock}{fraction}{zone}"))
    return [*out, "null", "0"]


def duration_texts(rng: random.Random, count: int) -> list[str]:
    fixed = [
        "9223372036854775807ns", "9223372036854775808ns", "-9223372036854775808ns",
        "-9223372036854775809ns", "2562047h47m16.854775807s", "2562047h47m16.854775808s",
        "-2562047h47m16.854775808s", "106751d", "106752d", "15250w", "15251w", "292y", "293y",
        "-292y", ".5d", "1.5y", "0.1w", "1e3s", "1d1d", "1h1d", "0", "-0", "+0", "", "d", "1D",
        "1 d", "1.d", ".d", "1..5d", "1µs", "1μs", "1us1ns", "0.0000000001s", "1.0000000001s",
        "9223372036.854775807s", "9223372036.854775808s", "1dd", "-1y-1d", "1y+1d", "1m1d",
    ]  # fmt: skip
    out = [j(t) for t in fixed]
    units = ["ns", "us", "µs", "ms", "s", "m", "h", "d", "w", "y"]
    for _ in range(count):
        parts = [
            rng.choice(
                [
                    str(rng.randint(0, 10 ** rng.randint(0, 19))),
                    f"{rng.randint(0, 999)}.{rng.randint(0, 10 ** rng.randint(0, 12))}",
                ]
            )
            + rng.choice(units)
            for _ in range(rng.randint(1, 3))
        ]
        out.append(j(rng.choice(["", "-", "+"]) + "".join(parts)))
    return [*out, "null", "1"]


SPRINTF_FLAGS = ["", "-", "+", " ", "0", "#", "-0", "+0", "+ ", "#0", "-#", " 0", "+-#0 "]
SPRINTF_VERBS = [*"vsdqxXobeEfFgGtcUT", "%", "y", "w", "p", "*d", "[1]d", "!", ""]


def sprintf_format(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(1, 3)):
        width = rng.choice(["", "", "0", "1", "5", "12", "25"])
        precision = rng.choice(["", "", ".", ".0", ".1", ".3", ".12", ".30"])
        directive = f"%{rng.choice(SPRINTF_FLAGS)}{width}{precision}{rng.choice(SPRINTF_VERBS)}"
        parts.append(rng.choice(["", "", "x=", " "]) + directive)
    return "".join(parts) + rng.choice(["", "", "%", "!"])


def sprintf_cases(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        args = [rng.choice(ANY) for _ in range(rng.choice([0, 1, 1, 1, 2, 3]))]
        out.append(f'{{"f": {j(sprintf_format(rng))}, "a": [{", ".join(args)}]}}')
    for text in NUMBER_TEXTS + COMPOSITES:  # every verb on each odd operand
        for verb in "vsdqxXobeEfgGtcU":
            out.append(f'{{"f": {j("%" + verb)}, "a": [{text}]}}')
    out += ['{"f": "%d", "a": {"$set": [1]}}', '{"f": "%v", "a": 1}', '{"f": 1, "a": []}']
    return out


GRID_OPERANDS = [
    "0", "-0", "1.0", "1e1", "-1.5", "1e21", "1e-7", "1e400", "255", "-300",
    "9223372036854775808", "-9223372036854775809", '"-ab"', '"+1"', '" x"', '"Grüße"', '""',
    '"😀"', '"a\\"b"', "true", "null", '[1,"a"]', '{"k":1}', '{"$set":[2,1]}', '{"$keys":["x"]}',
]  # fmt: skip


def sprintf_grid() -> list[str]:
    """Every verb with each flag, width and precision on a fixed set of odd operands."""
    out = []
    for verb in "vsdqxXobOeEfFgGtcUTp":
        for flags in ("", "-", "+", " ", "0", "#", "-0", "+0", "# 0", "+-"):
            for width in ("", "7"):
                for precision in ("", ".2", ".0"):
                    template = j(f"<%{flags}{width}{precision}{verb}>")
                    out += [f'{{"f": {template}, "a": [{x}]}}' for x in GRID_OPERANDS]
    return out


INDEX_PARTS = [
    "[1]", "[2]", "[3]", "[0]", "[4]", "[-1]", "[x]", "[", "[1", "[]", "[01]", "[1000001]",
    "*", "*", ".*", ".[2]*", "[2]*", "[1]*", "5", ".2", "-", "0", "+", "[2].2", "[1]5",
]  # fmt: skip
INDEX_OPERANDS = ["3", "-4", "0", "1000000", "1000001", "-1000001", "9223372036854775808",
                  "2.0", "1e1", '"x"', '"7"', "null", "[1]"]  # fmt: skip


def sprintf_index_cases(rng: random.Random, count: int) -> list[str]:
    """Operand indexes `[n]` and `*` widths and precisions, well and badly formed."""
    out = []
    for _ in range(count):
        directives = []
        for _ in range(rng.randint(1, 3)):
            parts = "".join(rng.choice(INDEX_PARTS) for _ in range(rng.randint(1, 3)))
            directives.append("%" + parts + rng.choice("dvsxqfgT%"))
        args = [rng.choice(INDEX_OPERANDS) for _ in range(rng.randint(0, 4))]
        template = j(rng.choice(["", "a"]).join(directives) + rng.choice(["", "%", "%["]))
        out.append(f'{{"f": {template}, "a": [{", ".join(args)}]}}')
    return out


def strings_family(rng: random.Random, count: int) -> list[str]:
    pool = [j(s) for s in STRINGS] + [
        "1",
        "null",
        "[]",
        '["a", 1]',
        '{"$set":["a","ab"]}',
        '["", "a"]',
    ]
    return [f'{{"a": {rng.choice(pool)}, "b": {rng.choice(pool)}}}' for _ in range(count)]


def int_like(rng: random.Random) -> str:
    return rng.choice(
        [
            "0",
            "1",
            "2",
            "-1",
            "-2",
            "3",
            "1.0",
            "1e1",
            "1.5",
            "-0",
            "null",
            '"1"',
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775808",
        ]
    )


def regex_cases(rng: random.Random, count: int) -> list[str]:
    patterns = [
        "a",
        "a*",
        "",
        "(a)(b)?",
        "(?P<n>x)",
        "[",
        "\\d+",
        "^",
        "$",
        "\\b",
        "(?i)é",
        "\\pL+",
        "a|",
        "(?m)^a$",
        "x{2,}",
        "\\C",
        ".",
        "[[:alpha:]]",
        "(?s).",
        "\\Q*\\E",
        "a{1001}",
    ]
    subjects = ["", "a", "aaa", "abab", "éÉ", "a\nb", "x_x xx", "😀a😀", "ab" * 5]
    templates = ["$1", "${1}", "$n", "${n}", "$$", "$1x", "$", "x", "${", "$0"]
    return [
        j({"p": rng.choice(patterns), "s": rng.choice(subjects), "r": rng.choice(templates)})[:-1]
        + f', "n": {int_like(rng)}}}'
        for _ in range(count)
    ]


def number_operands(rng: random.Random, count: int) -> list[str]:
    small = [
        "0",
        "1",
        "-1",
        "2",
        "10",
        "-10",
        "1.0",
        "1e1",
        "0.5",
        "1.5",
        "-0",
        "3",
        "100000",
        "100001",
        "1e5",
        "null",
        '"1"',
        "-100000",
    ]  # OPA builds any range: keep them small
    return [
        f'{{"a": {rng.choice(small)}, "b": {rng.choice(small)}, "s": {rng.choice(small)}}}'
        for _ in range(count)
    ]


def one_string_family(rng: random.Random, extra: list[str], count: int) -> list[str]:
    pool = ANY + [j(s) for s in extra]
    return [rng.choice(pool) for _ in range(count)] + [j(s) for s in extra]


HEX = ["", "00", "0g", "abc", "ABCD", "ff80", "c3a9", "e282ac", "f09f9880", "zz", "0"]
URLS = [
    "a+b",
    "a%20b",
    "%zz",
    "%",
    "é",
    "a=b&c=d",
    "a=1&a=2&b",
    "a;b=c",
    "=x&&y=",
    "%ff",
    "+%2B",
    "a=%C3",
]
UNITS = [
    "1",
    "1k",
    "1K",
    "1kb",
    "1Ki",
    "1KiB",
    "1m",
    "1M",
    "1.5G",
    "-1k",
    "1e3",
    "1e-3m",
    "10E",
    "1 k",
    '"1k"',
    "1ki",
    "1mi",
    "1Mi",
    "0.0001m",
    "1z",
    "",
    "k",
    "1.k",
    ".5k",
    "1EiB",
    "1e999999",
]
SEMVERS = [
    "1.0.0",
    "v1.0.0",
    "1.0",
    "01.0.0",
    "1.0.0-rc.1",
    "1.0.0+b",
    "1.0.0-01",
    "1.0.0-a.b",
    "9223372036854775808.0.0",
    "1.0.0-",
    "V1.0.0",
    "1.0.0-rc.1+x.y",
    "0.0.0",
    "1.2.3-0a",
]
CIDRS = [
    "10.0.0.0/8",
    "10.0.0.0/33",
    "010.0.0.0/8",
    "::/0",
    "::1/128",
    "::1/129",
    "fe80::1%eth0/64",
    "1.2.3.4/08",
    "1.2.3.4/ 8",
    "::ffff:1.2.3.4/96",
    "1.2.3.4",
    "1.2.3.4/-1",
    "256.0.0.0/8",
]
GLOBS = [
    "a*",
    "*",
    "a.b",
    "a+",
    "[a-c]",
    "[a-]",
    "a**",
    "\\",
    "a\\*",
    ".*",
    "[]",
    "b*",
    "",
    "x[a-z]+y",
]


def families(seed: int, scale: float) -> list[Family]:
    """Every family, generated from `seed`; `scale` multiplies the random counts."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data

    def n(count: int) -> int:
        return max(1, int(count * scale))

    moments = moment_texts(rng, n(300))
    return [
        Family("time.add_date", "time.add_date(c.t, c.y, c.m, c.d)", add_date_cases(rng, n(3000))),
        Family("time.date", "time.date(c)", moments),
        Family("time.clock", "time.clock(c)", moments),
        Family("time.weekday", "time.weekday(c)", moments),
        Family("time.diff", "time.diff(c.a, c.b)", diff_cases(rng, n(1500))),
        Family("time.format", "time.format(c)", format_cases(rng, n(1500)) + moments),
        Family("time.parse_ns", "time.parse_ns(c.l, c.v)", parse_ns_cases(rng, n(3000))),
        Family("time.parse_rfc3339_ns", "time.parse_rfc3339_ns(c)", rfc3339_texts(rng, n(800))),
        Family("time.parse_duration_ns", "time.parse_duration_ns(c)", duration_texts(rng, n(800))),
        Family(
            "sprintf", "sprintf(c.f, [V(j, a) | some j, a in c.a])", sprintf_cases(rng, n(4000))
        ),
        Family(
            "sprintf.index",
            "sprintf(c.f, [V(j, a) | some j, a in c.a])",
            sprintf_index_cases(rng, n(3000)),
        ),
        Family("sprintf.grid", "sprintf(c.f, [V(j, a) | some j, a in c.a])", sprintf_grid()),
        Family(
            "strings.any_prefix_match",
            "strings.any_prefix_match(V(0, c.a), V(1, c.b))",
            strings_family(rng, n(300)),
        ),
        Family(
            "strings.any_suffix_match",
            "strings.any_suffix_match(V(0, c.a), V(1, c.b))",
            strings_family(rng, n(300)),
        ),
        Family("strings.count", "strings.count(V(0, c.a), V(1, c.b))", strings_family(rng, n(300))),
        Family("indexof_n", "indexof_n(V(0, c.a), V(1, c.b))", strings_family(rng, n(300))),
        Family("strings.split_n", "strings.split_n(c.s, c.p, c.n)", regex_cases(rng, n(300))),
        Family("regex.replace", "regex.replace(c.s, c.p, c.r)", regex_cases(rng, n(500))),
        Family("regex.split", "regex.split(c.p, c.s)", regex_cases(rng, n(300))),
        Family("regex.find_n", "regex.find_n(c.p, c.s, c.n)", regex_cases(rng, n(500))),
        Family(
            "regex.template_match",
            'regex.template_match(c.p, c.s, "{", "}")',
            regex_cases(rng, n(200)),
        ),
        Family(
            "regex.globs_match",
            "regex.globs_match(c.a, c.b)",
            [j({"a": rng.choice(GLOBS), "b": rng.choice(GLOBS)}) for _ in range(n(400))],
        ),
        Family(
            "numbers.range_step", "numbers.range_step(c.a, c.b, c.s)", number_operands(rng, n(400))
        ),
        Family(
            "object.subset",
            "object.subset(V(0, c.a), V(1, c.b))",
            [
                f'{{"a": {rng.choice(COMPOSITES)}, "b": {rng.choice(COMPOSITES)}}}'
                for _ in range(n(400))
            ],
        ),
        Family(
            "urlquery.encode_object",
            "urlquery.encode_object(V(0, c))",
            [
                '{"a": "b"}',
                '{"a": ["x", "y"]}',
                '{"a": {"$set": ["y", "x"]}}',
                '{"a": []}',
                '{"a": 1}',
                '{"é": "a b&c"}',
                '{"$keys": ["a"]}',
                "{}",
                '{"a": null}',
                '{"a": ["x", 1]}',
            ],
        ),
        Family(
            "urlquery.decode_object",
            "urlquery.decode_object(c)",
            one_string_family(rng, URLS, n(100)),
        ),
        Family("urlquery.encode", "urlquery.encode(c)", one_string_family(rng, URLS, n(100))),
        Family("urlquery.decode", "urlquery.decode(c)", one_string_family(rng, URLS, n(100))),
        Family("hex.encode", "hex.encode(c)", one_string_family(rng, HEX, n(100))),
        Family("hex.decode", "hex.decode(c)", one_string_family(rng, HEX, n(100))),
        Family(
            "base64url.encode_no_pad",
            "base64url.encode_no_pad(c)",
            one_string_family(rng, [], n(60)),
        ),
        Family("units.parse", "units.parse(c)", one_string_family(rng, UNITS, n(100))),
        Family("units.parse_bytes", "units.parse_bytes(c)", one_string_family(rng, UNITS, n(100))),
        Family("semver.is_valid", "semver.is_valid(c)", one_string_family(rng, SEMVERS, n(100))),
        Family(
            "semver.compare",
            "semver.compare(c.a, c.b)",
            [j({"a": rng.choice(SEMVERS), "b": rng.choice(SEMVERS)}) for _ in range(n(200))],
        ),
        Family("net.cidr_is_valid", "net.cidr_is_valid(c)", one_string_family(rng, CIDRS, n(100))),
        Family("glob.quote_meta", "glob.quote_meta(c)", one_string_family(rng, GLOBS, n(60))),
        Family("crypto.md5", "crypto.md5(c)", one_string_family(rng, [], n(40))),
        Family("crypto.sha1", "crypto.sha1(c)", one_string_family(rng, [], n(40))),
        Family("crypto.sha256", "crypto.sha256(c)", one_string_family(rng, [], n(40))),
        Family("crypto.hmac.sha512", "crypto.hmac.sha512(c.a, c.b)", strings_family(rng, n(60))),
        Family("crypto.hmac.md5", "crypto.hmac.md5(c.a, c.b)", strings_family(rng, n(60))),
        Family("crypto.hmac.equal", "crypto.hmac.equal(c.a, c.b)", strings_family(rng, n(60))),
    ]
