"""`Local` in time.* operands is Go's time.Local (initLocal: $TZ, else /etc/localtime), against
`opa eval` run with the same environment. Before session 10 the embedded engine used Python's
local time, a fixed offset (the one in force when the call ran): on a host in New York, a July
instant read in January came out an hour off, and $TZ values Go falls back to UTC for (a POSIX
rule, an unknown name) were honoured."""

from pathlib import Path

import pytest

from tests.unit.policy.wasm.differential import both, mismatches

BODY = """results := {i: r |
	some i, c in input.cases
	r := [
		time.date(c.t), time.clock(c.t), time.weekday(c.t),
		time.format([c.t[0], "Local", "2006-01-02T15:04:05 MST -07:00"]),
		time.add_date(c.t, 0, 6, 0), time.diff(c.t, c.later),
	]
}
"""
INSTANTS = [
    0, 1_704_067_200 * 10**9, 1_720_000_000 * 10**9, 1_710_054_000 * 10**9 - 1,
    1_710_054_000 * 10**9, 1_730_613_600 * 10**9, 1_711_846_800 * 10**9, -(10**18), 4 * 10**18,
]  # fmt: skip


@pytest.mark.parametrize(
    "tz",
    [
        "America/New_York", ":Europe/Paris", "/usr/share/zoneinfo/Asia/Kolkata", "",
        "UTC", "Nowhere/Else", "CET-1CEST,M3.5.0,M10.5.0/3", "Australia/Lord_Howe", None,
    ],
)  # fmt: skip
def test_local_is_gos_time_local(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tz: str | None
) -> None:
    if tz is None:
        monkeypatch.delenv("TZ", raising=False)  # /etc/localtime, for both
    else:
        monkeypatch.setenv("TZ", tz)  # opa eval inherits the environment
    cases = [{"t": [ns, "Local"], "later": [ns + 180 * 86400 * 10**9, "Local"]} for ns in INSTANTS]
    expected, actual = both(tmp_path, BODY, {"cases": cases})
    assert mismatches(expected, actual, cases) == []
    assert len(expected) == len(cases)
    if tz == "America/New_York":
        assert expected["2"][3] == "2024-07-03T05:46:40 EDT -04:00"
