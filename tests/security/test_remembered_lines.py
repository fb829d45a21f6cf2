"""The audit line's remembered line texts (jsonfields.FieldEncoder.items_of_line): the text between
a line's fresh fields, remembered per (names, the other fields' values), is the text scrubbing and
encoding those fields again gives; a line with a value the scrubber changes is never remembered
(no credential is kept), and its fields are scrubbed on every line; the fresh fields are scrubbed
on every line; what is remembered stays bounded in memory whatever callers send."""

import gc
import logging
import random
import tracemalloc
from typing import Any

import pytest
from sekisho.logs import _STANDARD_ATTRIBUTES, JsonLineFormatter, LineHandler
from sekisho.redaction import ScrubFilter

from tests.security.test_audit_line import (
    OPAQUE,
    Configure,
    _lines,
    configured,  # noqa: F401 (fixture)
    request_id,  # noqa: F401 (fixture)
)
from tests.security.test_redaction_fast_path import ADVERSARIAL, _fields, _record_line
from tests.security.test_remembered_fields_bound import VALUES, _stem

pytestmark = pytest.mark.security

FRESH = frozenset({"id", "jti"})


def _with_fresh(value: Any, serial: int) -> dict[str, Any]:
    return _fields(value) | {"jti": f"jti-{serial}"}


@pytest.mark.parametrize("value", ADVERSARIAL, ids=range(len(ADVERSARIAL)))
def test_remembered_lines_give_the_record_line(configured: Configure, value: str) -> None:  # noqa: F811
    out = configured()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, LineHandler)
    for serial in range(3):  # seen, remembered, then written from the remembered text
        fields = _with_fresh(value, serial)
        assert handler.write_event("sekisho.test", logging.INFO, "odd", fields, FRESH)
    _record_line(handler, _with_fresh(value, 2))
    first, second, third, recorded = _lines(out)
    assert third == recorded
    assert first.replace("jti-0", "jti-2") == second.replace("jti-1", "jti-2") == third
    assert OPAQUE not in out.getvalue()


class _CountingScrubber(ScrubFilter):
    def __init__(self) -> None:
        super().__init__(_STANDARD_ATTRIBUTES)
        self.calls: list[str] = []

    def scrub_field(self, name: str, value: Any) -> Any:
        self.calls.append(name)
        return super().scrub_field(name, value)


@pytest.mark.parametrize("fresh_value", [f"Bearer {OPAQUE}", "plain-id"], ids=["bearer", "id"])
def test_fresh_fields_are_scrubbed_on_every_line_and_the_rest_is_remembered(
    fresh_value: str,
) -> None:
    formatter, scrubber = JsonLineFormatter(), _CountingScrubber()
    texts = []
    for _ in range(3):
        scrubber.calls.clear()
        fields = {"audience": "https://crm-as.example.com", "jti": fresh_value, "kid": "k-1"}
        texts.append(
            formatter.format_event(
                1.0e9, "INFO", "sekisho.audit", "x", fields, scrubber=scrubber, fresh=FRESH
            )
        )
    assert scrubber.calls == ["jti"]  # the third line: only the fresh field went through
    assert texts[0] == texts[1] == texts[2]
    assert OPAQUE not in texts[2]


def test_equal_values_of_other_types_never_share_a_text() -> None:
    # 1 == True == 1.0 (and hash alike): a number is never part of a remembered line, or a line
    # with True there would be written with the text of the line with 1.
    formatter, scrubber = JsonLineFormatter(), ScrubFilter(_STANDARD_ATTRIBUTES)
    lines = []
    for value in (1, 1, 1, True, 1.0, None, 0, False):
        fields = {"audience": "a", "n": value, "jti": "j"}
        line = formatter.format_event(
            1.0e9, "INFO", "sekisho.audit", "x", fields, scrubber=scrubber, fresh=FRESH
        )
        lines.append(line.split('"n": ')[1].split(",")[0])
    assert lines == ["1", "1", "1", "true", "1.0", "null", "0", "false"]


def test_a_worker_s_audit_lines_are_remembered_too(configured: Configure) -> None:  # noqa: F811
    # The worker stamps (numbers: never remembered) are fresh fields of the line.
    configured(worker=3)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, LineHandler)
    for serial in range(3):
        fields = {"audience": "https://crm-as.example.com", "jti": f"j{serial}"}
        assert handler.write_event("sekisho.audit", logging.INFO, "x", fields, FRESH)
    formatter = handler.formatter
    assert isinstance(formatter, JsonLineFormatter)
    assert formatter._fields._lines


def test_a_line_holding_a_credential_is_never_remembered() -> None:
    formatter, scrubber = JsonLineFormatter(), _CountingScrubber()
    audience = f"https://as.example.com/?access_token={OPAQUE}"
    for serial in range(3):
        scrubber.calls.clear()
        fields = {"audience": audience, "jti": f"j{serial}"}
        line = formatter.format_event(
            1.0e9, "INFO", "sekisho.audit", "x", fields, scrubber=scrubber, fresh=FRESH
        )
        assert "access_token=[redacted]" in line and OPAQUE not in line
    assert scrubber.calls == ["audience", "jti"]  # scrubbed again on the third line
    remembered = formatter._fields._lines
    assert not any(OPAQUE in repr(key) for key in remembered)


BOUND = 10 * 1024 * 1024  # bytes: field texts 2 MiB, line texts 4 MiB, the scrubber's ~1.3 MiB
# Every value as long as a remembered one may be: each field and so each line is remembered.
LIMITS = {
    "at-the-limits": lambda draw, n: {
        "audience": _stem(draw, n).ljust(256, "."),
        "requested_scopes": tuple(f"{i:x}{_stem(draw, n)}"[:16].ljust(16, ".") for i in range(16)),
        "resources": tuple(f"{i:x}{_stem(draw, n)}"[:16].ljust(16, "/") for i in range(16)),
        "reason": _stem(draw, n).ljust(256, " "),
    },
}


@pytest.mark.parametrize("kind", [*VALUES, *LIMITS])
def test_long_distinct_lines_sent_twice_stay_within_a_few_mib(kind: str) -> None:
    formatter = JsonLineFormatter()
    scrubber = ScrubFilter(_STANDARD_ATTRIBUTES)
    make = (VALUES | LIMITS)[kind]
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for n in range(4000):
            for serial in range(2):  # each line twice: what makes it remembered
                fields = make(random.Random(7_000_003 + n), n) | {"jti": f"{n}-{serial}"}  # noqa: S311
                line = formatter.format_event(
                    1.0e9, "INFO", "sekisho.audit", "x", fields, scrubber=scrubber, fresh=FRESH
                )
                assert line.startswith('{"time": ')
        gc.collect()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if kind in ("at-the-limits", "emoji-audience"):  # the others are too long to remember
        assert formatter._fields._lines, "lines were remembered (the bound is what is measured)"
    assert peak - before < BOUND, f"{(peak - before) / 2**20:.1f} MiB at most"
