"""Exchange outcomes and IdP-A-signed tokens shared by the attack suites."""

from typing import Any

import pytest
from sekisho.errors import InvalidTokenError, ServiceError
from sekisho.models import ExchangeResult

from tests.harness import IDP_A, IDP_B, Harness
from tests.security._tokens import sign_with_key

IDP_A_JWKS = f"{IDP_A}/jwks"
IDP_B_JWKS = f"{IDP_B}/jwks"
EVIL_JWKS = "https://evil.example.com/jwks"


async def rejected(harness: Harness, token: str, **overrides: Any) -> InvalidTokenError:
    """Exchange `token` and assert it is refused as a bad subject token."""
    with pytest.raises(ServiceError) as caught:
        await harness.exchanger.exchange(harness.request(token, **overrides))
    error = caught.value
    assert isinstance(error, InvalidTokenError)  # a leaf names why (its `code`)
    assert (error.reason, error.grpc_code) == ("invalid_request", "UNAUTHENTICATED")
    assert token not in error.public_message
    return error


async def accepted(harness: Harness, token: str, **overrides: Any) -> ExchangeResult:
    """Exchange `token`; any refusal propagates and fails the calling test."""
    return await harness.exchanger.exchange(harness.request(token, **overrides))


def idp_a_signed(
    harness: Harness,
    header: dict[str, Any] | None = None,
    payload: dict[str, Any] | bytes | None = None,
) -> str:
    """An RS256 token signed by IdP A's real key with exactly this header and payload."""
    full_header: dict[str, Any] = {"alg": "RS256", "typ": "JWT", "kid": harness.idp_a.rsa_kid}
    full_header.update(header or {})
    body = harness.idp_a.claims(harness.clock.now()) if payload is None else payload
    return sign_with_key(full_header, body, harness.idp_a.rsa_key, "RS256")
