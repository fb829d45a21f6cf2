"""sekisho.client's typed errors: what a caller reads off a refusal without parsing metadata."""

import pytest
from sekisho.client.errors import (
    MAX_RETRY_AFTER_SECONDS,
    ExchangeDeniedError,
    RateLimitedError,
    error_for,
)


def test_the_ids_and_the_wait_are_attributes_and_the_request_id_is_in_the_text() -> None:
    error = error_for(
        "slow_down",
        "rate limited",
        "RESOURCE_EXHAUSTED",
        {"request_id": "r-1", "decision_id": "d-1", "retry_after": "2"},
    )
    assert isinstance(error, RateLimitedError)
    assert (error.request_id, error.decision_id, error.retry_after) == ("r-1", "d-1", 2.0)
    assert str(error) == "slow_down: rate limited (request_id r-1)"


@pytest.mark.parametrize(
    "metadata", [{}, {"retry_after": "soon"}], ids=["no-metadata", "unreadable-retry-after"]
)
def test_absent_values_read_as_empty_or_none(metadata: dict[str, str]) -> None:
    error = ExchangeDeniedError("access_denied", "denied", "PERMISSION_DENIED", metadata)
    assert (error.request_id, error.decision_id, error.retry_after) == ("", "", None)
    assert str(error) == "access_denied: denied"


@pytest.mark.parametrize(
    ("sent", "read"),
    [
        ("inf", MAX_RETRY_AFTER_SECONDS),
        ("1e9", MAX_RETRY_AFTER_SECONDS),
        ("-5", 0.0),
        ("nan", None),
    ],
)
def test_a_retry_after_is_read_within_its_bounds(sent: str, read: float | None) -> None:
    error = RateLimitedError("slow_down", "busy", "RESOURCE_EXHAUSTED", {"retry_after": sent})
    assert error.retry_after == read
