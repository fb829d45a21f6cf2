"""sekisho.identifiers: request and decision ids are version-4 UUIDs in uuid4's own forms; a
minted jti has one form, which `sekisho revoke token` tells inbound jtis apart by."""

import uuid

import pytest
from sekisho.identifiers import (
    has_minted_jti_form,
    random_jti,
    random_uuid,
    random_uuid_hex,
    request_id,
)


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


def test_every_minted_jti_has_the_minted_form() -> None:
    assert all(has_minted_jti_form(random_jti()) for _ in range(2000))


@pytest.mark.parametrize(
    "jti",
    [
        pytest.param("5b0c8a3e-7d1f-4c2a-9e6b-1a2b3c4d5e6f", id="uuid"),
        pytest.param("ID.4eAWJOCMB3SX8XewDfVR", id="okta"),
        pytest.param("3q2-7wE4QbG0aSxW9hX1y", id="21-characters"),
        pytest.param("3q2-7wE4QbG0aSxW9hX1yAA", id="23-characters"),
        pytest.param("3q2-7wE4QbG0aSxW9hX1yB", id="trailing-bits-set"),
        pytest.param("3q2+7wE4QbG0aSxW9hX1yA", id="standard-base64"),
        pytest.param("", id="empty"),
    ],
)
def test_other_jtis_do_not_have_the_minted_form(jti: str) -> None:
    assert not has_minted_jti_form(jti)
