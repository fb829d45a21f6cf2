"""The client assertion's claim rules (RFC 7523 §3, http/assertion.py): its times are checked by
the rule the inbound tokens use (identity.claims.validate_times), not a second copy that could
disagree at the boundary."""

from typing import Any

import pytest
from sekisho.errors import InvalidClientError
from sekisho.http.assertion import check_claims

NOW, LEEWAY = 1_800_000_000, 30
AUDIENCES = frozenset({"https://sekisho.example/token"})


def _claims(**changes: Any) -> dict[str, Any]:
    claims = {"iss": "agent", "sub": "agent", "aud": "https://sekisho.example/token"}
    claims |= {"exp": NOW + 60, "jti": "j-1"} | changes
    return claims


def _check(claims: dict[str, Any]) -> object:
    return check_claims(claims, "agent", AUDIENCES, NOW, LEEWAY)


def test_exp_at_the_leeway_boundary_is_expired_as_for_inbound_tokens() -> None:
    # validate_times: exp <= now - leeway is expired (RFC 7519 §4.1.4: now must be before exp).
    with pytest.raises(InvalidClientError):
        _check(_claims(exp=NOW - LEEWAY))
    assert _check(_claims(exp=NOW - LEEWAY + 1))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid_beyond_the_leeway_is_refused(claim: str) -> None:
    with pytest.raises(InvalidClientError):
        _check(_claims(**{claim: NOW + LEEWAY + 1}))
    assert _check(_claims(**{claim: NOW + LEEWAY}))


def test_a_long_lived_assertion_is_refused() -> None:
    with pytest.raises(InvalidClientError):
        _check(_claims(exp=NOW + 10_000))
