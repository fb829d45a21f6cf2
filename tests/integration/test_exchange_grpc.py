"""ExchangeToken over real gRPC against a real HTTP IdP; tokens checked with joserfc, a JOSE
library independent of the one Sekisho signs with."""

import json

import aiohttp
import grpc
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.constants import ERROR_DOMAIN, TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG

from tests.grpc_errors import error_info
from tests.integration.conftest import SEKISHO_ISSUER, LiveStack

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"


async def _http_jwks(live: LiveStack) -> tuple[bytes, str]:
    url = f"{live.http_base}/.well-known/jwks.json"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read(), response.headers["Cache-Control"]


async def _verify_independently(live: LiveStack, token: str) -> tuple[dict, dict]:
    body, _ = await _http_jwks(live)
    keys = KeySet.import_key_set(json.loads(body))
    decoded = jose_jwt.decode(token, keys, algorithms=["ES256"])
    return dict(decoded.header), dict(decoded.claims)


async def test_id_jag_verifies_with_published_jwks_and_matches_contract(live: LiveStack) -> None:
    subject = live.user_token(acr="urn:mfa", amr=["pwd", "otp"])
    response = await live.stub.ExchangeToken(
        pb.ExchangeTokenRequest(
            subject_token=subject, audience=CRM_AS, scope=["crm.read", "crm.write"]
        )
    )
    header, claims = await _verify_independently(live, response.access_token)
    assert header["typ"] == "oauth-id-jag+jwt"
    assert header["alg"] == "ES256"
    assert response.issued_token_type == TOKEN_TYPE_ID_JAG
    assert response.token_type == "N_A"
    assert list(response.scope) == ["crm.read"]  # sales may read, not write: ⊆ requested
    assert claims["iss"] == SEKISHO_ISSUER
    assert claims["aud"] == CRM_AS and isinstance(claims["aud"], str)
    assert claims["sub"] == "alice"
    assert claims["client_id"] == "agent-app"
    assert claims["scope"] == "crm.read"
    assert claims["resource"] == CRM_MCP
    assert claims["acr"] == "urn:mfa" and claims["amr"] == ["pwd", "otp"]
    assert claims["tenant"] == "acme" and claims["email"] == "alice@example.com"
    assert claims["jti"] == response.jti and len(claims["jti"]) >= 22  # ≥128 bits base64url
    assert claims["exp"] - claims["iat"] == response.expires_in <= 300
    assert response.decision_id


async def test_access_token_profile_is_rfc9068_and_distinct(live: LiveStack) -> None:
    response = await live.stub.ExchangeToken(
        pb.ExchangeTokenRequest(
            subject_token=live.user_token(),
            audience=CRM_AS,
            resource=[CRM_MCP],
            requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        )
    )
    header, claims = await _verify_independently(live, response.access_token)
    assert header["typ"] == "at+jwt"
    assert response.token_type == "Bearer"
    assert claims["aud"] == CRM_MCP
    for name in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti"):
        assert name in claims, f"RFC 9068 §2.2 requires {name}"


async def test_get_jwks_returns_the_http_bytes_with_cache_control(live: LiveStack) -> None:
    body, cache_control = await _http_jwks(live)
    response = await live.stub.GetJwks(pb.GetJwksRequest())
    assert response.jwks.encode() == body
    assert cache_control == "public, max-age=300"
    assert len(json.loads(body)["keys"]) == 2  # active + next are published


@pytest.mark.parametrize(
    ("request_fields", "code", "reason"),
    [
        pytest.param(
            {"audience": ""},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_request",
            id="missing-audience",
        ),
        pytest.param(
            {"subject_token_type": "urn:x"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_request",
            id="unsupported-subject-type",
        ),
        pytest.param(
            {"requested_token_type": "urn:x"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_request",
            id="unsupported-requested-type",
        ),
        pytest.param(
            {"subject_token": "not.a.jwt"},
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid_request",
            id="bad-subject-token",
        ),
        pytest.param(
            {"actor_token": "x"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_request",
            id="actor-without-type",
        ),
        pytest.param(
            {"audience": "https://unknown.example.com"},
            grpc.StatusCode.PERMISSION_DENIED,
            "access_denied",
            id="unknown-audience",
        ),
        pytest.param(
            {"resource": ["https://evil.example.com/mcp"]},
            grpc.StatusCode.PERMISSION_DENIED,
            "invalid_target",
            id="unregistered-resource",
        ),
        pytest.param(
            {"scope": ["crm.write"]},
            grpc.StatusCode.PERMISSION_DENIED,
            "invalid_scope",
            id="scope-not-grantable",
        ),
        pytest.param(
            {"scope": ["a b"]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid_request",
            id="scope-with-space",
        ),
    ],
)
async def test_error_table(
    live: LiveStack, request_fields: dict, code: grpc.StatusCode, reason: str
) -> None:
    subject = live.user_token()
    fields = {"subject_token": subject, "audience": CRM_AS, **request_fields}
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.ExchangeToken(pb.ExchangeTokenRequest(**fields))
    assert caught.value.code() == code
    info = error_info(caught.value)
    assert (info.reason, info.domain) == (reason, ERROR_DOMAIN)
    assert subject not in (caught.value.details() or "")
    assert subject.split(".")[1] not in (caught.value.details() or "")


async def test_unknown_audience_answers_exactly_like_a_deny(live: LiveStack) -> None:
    """No registry enumeration: an unregistered audience and a registered one without a grant."""
    outsider = live.user_token(groups=["marketing"])
    answers = []
    for audience in ("https://crm-as.example.com", "https://not-registered.example.com"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await live.stub.ExchangeToken(
                pb.ExchangeTokenRequest(subject_token=outsider, audience=audience)
            )
        answers.append(
            (caught.value.code(), caught.value.details(), error_info(caught.value).reason)
        )
    assert answers[0] == answers[1]


async def test_tenant_bound_downstream_refuses_other_tenant(live: LiveStack) -> None:
    other = live.user_token(groups=["engineering"], tenant="globex")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await live.stub.ExchangeToken(
            pb.ExchangeTokenRequest(subject_token=other, audience="https://docs-as.example.com")
        )
    assert error_info(caught.value).reason == "access_denied"
    own = live.user_token(groups=["engineering"], tenant="acme")
    response = await live.stub.ExchangeToken(
        pb.ExchangeTokenRequest(subject_token=own, audience="https://docs-as.example.com")
    )
    assert sorted(response.scope) == ["docs.read", "docs.write"]


async def test_request_id_is_returned_and_echoed(live: LiveStack) -> None:
    call = live.stub.GetJwks(pb.GetJwksRequest(), metadata=(("x-request-id", "req-123"),))
    await call
    metadata = dict(await call.trailing_metadata())
    assert metadata["x-request-id"] == "req-123"

    # On a refusal too, next to the ErrorInfo details.
    refused = live.stub.ExchangeToken(
        pb.ExchangeTokenRequest(subject_token="not-a-jwt", audience="https://x.example.com"),
        metadata=(("x-request-id", "req-456"),),
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await refused
    trailers = dict(caught.value.trailing_metadata() or ())
    assert trailers["x-request-id"] == "req-456"
    assert "grpc-status-details-bin" in trailers
