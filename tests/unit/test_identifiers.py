"""sekisho.identifiers: request and decision ids are version-4 UUIDs in uuid4's own forms."""

import uuid

import pytest
from sekisho.identifiers import random_uuid, random_uuid_hex, request_id


@pytest.mark.parametrize(
    ("make", "form"),
    [(random_uuid, str), (random_uuid_hex, lambda u: u.hex)],
    ids=["hyphenated", "hex"],
)
def test_ids_are_version_4_uuids_in_uuid4s_form(make, form) -> None:  # type: ignore[no-untyped-def]
    ids = [make() for _ in range(2000)]
    for value in ids:
        parsed = uuid.UUID(value)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert form(parsed) == value  # the exact text str(uuid4()) / uuid4().hex would give
    assert len(set(ids)) == len(ids)


def test_the_random_bits_vary_in_every_position() -> None:
    # 122 random bits: every hex digit but the version nibble takes several values.
    ids = [random_uuid_hex() for _ in range(500)]
    for position in range(32):
        seen = {value[position] for value in ids}
        assert len(seen) == 1 if position == 12 else len(seen) > 1


def _is_new_id(value: str) -> bool:
    return len(value) == 32 and uuid.UUID(value).version == 4


@pytest.mark.parametrize(
    ("given", "taken"),
    [
        ("req-1", "req-1"),
        ("r" * 200, "r" * 128),  # it goes into every log and audit line: bounded
        ("a\nb", None),  # a newline would forge a second log line in text format
        ("a\x1bb", None),
        ("", None),
        (None, None),
    ],
    ids=["printable", "too-long", "newline", "escape", "empty", "absent"],
)
def test_one_request_id_rule_for_every_transport(given: str | None, taken: str | None) -> None:
    """Both the gRPC interceptor and the HTTP token endpoint call request_id (style review #12)."""
    value = request_id(given)
    if taken is None:
        assert _is_new_id(value)
    else:
        assert value == taken
