"""Every ServiceError class on every transport: the gRPC status and ErrorInfo, the token endpoint's
RFC 6749 §5.2 answer and the gateway's RFC 6750 answer (docs/architecture.md §3).

The expected values are written out here from the contract, not read from the classes, so a class
whose attributes drift from the contract fails; a new class is walked automatically and fails
until its nearest contract row below says what the wire must carry.
"""

import json
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from sekisho import errors
from sekisho.errors import ServiceError, service_error_classes
from sekisho.gateway.authorizer import denial
from sekisho.gateway.routes import Route
from sekisho.http.token import error_response
from sekisho.rpc.interceptors import ErrorMappingInterceptor

# class → (ErrorInfo reason, gRPC code, token endpoint `error`, HTTP status, gateway status)
CONTRACT: dict[type[ServiceError], tuple[str, str, str, int, int]] = {
    errors.ServiceError: ("server_error", "INTERNAL", "server_error", 500, 500),
    errors.InvalidRequestError: (
        "invalid_request",
        "INVALID_ARGUMENT",
        "invalid_request",
        400,
        400,
    ),
    errors.RequestTooLargeError: (
        "invalid_request",
        "INVALID_ARGUMENT",
        "invalid_request",
        413,
        400,
    ),
    errors.RequestTooSlowError: (
        "invalid_request",
        "INVALID_ARGUMENT",
        "invalid_request",
        408,
        400,
    ),
    errors.ContentCodingError: ("invalid_request", "INVALID_ARGUMENT", "invalid_request", 415, 400),
    errors.TransferCodingError: (
        "invalid_request",
        "INVALID_ARGUMENT",
        "invalid_request",
        400,
        400,
    ),
    errors.UnsupportedGrantTypeError: (
        "invalid_request",
        "INVALID_ARGUMENT",
        "unsupported_grant_type",
        400,
        400,
    ),
    errors.InvalidTokenError: ("invalid_request", "UNAUTHENTICATED", "invalid_request", 400, 401),
    errors.InvalidClientError: ("invalid_client", "UNAUTHENTICATED", "invalid_client", 401, 403),
    errors.InvalidTargetError: ("invalid_target", "PERMISSION_DENIED", "invalid_target", 400, 403),
    errors.InvalidScopeError: ("invalid_scope", "PERMISSION_DENIED", "invalid_scope", 400, 403),
    errors.AccessDeniedError: ("access_denied", "PERMISSION_DENIED", "invalid_grant", 400, 403),
    errors.InsufficientUserAuthenticationError: (
        "insufficient_user_authentication",
        "FAILED_PRECONDITION",
        "insufficient_user_authentication",
        400,
        403,
    ),
    errors.ConsentRequiredError: (
        "consent_required",
        "FAILED_PRECONDITION",
        "invalid_grant",
        400,
        403,
    ),
    errors.TemporarilyUnavailableError: (
        "temporarily_unavailable",
        "UNAVAILABLE",
        "temporarily_unavailable",
        503,
        503,
    ),
    errors.DeadlineExceededError: (
        "temporarily_unavailable",
        "DEADLINE_EXCEEDED",
        "temporarily_unavailable",
        503,
        503,
    ),
    errors.SlowDownError: ("slow_down", "RESOURCE_EXHAUSTED", "slow_down", 429, 429),
}
CLASSES = service_error_classes()
ROUTE = Route(0, "", "/", (), "https://as.example", (), ("read",), "")
MESSAGE = "public text"


def _contract(cls: type[ServiceError]) -> tuple[str, str, str, int, int]:
    """The nearest contract row up the class's ancestry (token leaves share their parent's)."""
    return next(CONTRACT[base] for base in cls.__mro__ if base in CONTRACT)


def test_the_walk_finds_the_token_leaves() -> None:
    assert errors.TokenExpiredError in CLASSES
    assert errors.BadSignatureError in CLASSES
    assert len(CLASSES) >= len(CONTRACT) + 10


def test_internal_codes_are_unique_and_stable_per_class() -> None:
    concrete = [cls for cls in CLASSES if cls is not errors.ServerError]
    codes = [cls.code for cls in concrete]
    assert len(set(codes)) == len(codes)
    assert errors.TokenExpiredError.code == "token_expired"
    assert errors.BadSignatureError.code == "signature_invalid"
    assert errors.UnknownKeyError.code == "key_unknown"


async def _raise_through_grpc(error: ServiceError) -> grpc.aio.AioRpcError:
    """A real grpc.aio server whose one method raises `error` behind the error interceptor."""
    import contextvars

    async def behaviour(request: bytes, context: Any) -> bytes:
        raise error

    handler = grpc.method_handlers_generic_handler(
        "test.Raise", {"Raise": grpc.unary_unary_rpc_method_handler(behaviour)}
    )
    server = grpc.aio.server(
        interceptors=[ErrorMappingInterceptor(contextvars.ContextVar("request_id"))]
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/test.Raise/Raise")
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(b"", metadata=(("x-request-id", "rid-1"),))
            return caught.value
    finally:
        await server.stop(0)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
async def test_grpc_status_and_error_info(cls: type[ServiceError]) -> None:
    reason, grpc_code, *_ = _contract(cls)
    failure = await _raise_through_grpc(cls(MESSAGE, metadata={"acr_values": "mfa"}))
    assert failure.code() == grpc.StatusCode[grpc_code]
    status = rpc_status.from_call(failure)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        reason,
        "sekisho.dev",
        {"acr_values": "mfa", "request_id": "rid-1"},  # every refusal names its request
    )
    if grpc_code == "INTERNAL":
        assert failure.details() == "internal error (request id rid-1)"
    else:
        assert failure.details() == MESSAGE


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_token_endpoint_answer(cls: type[ServiceError]) -> None:
    reason, _, oauth_error, status, _ = _contract(cls)
    response = error_response(cls(MESSAGE))
    body = json.loads(response.body)  # type: ignore[arg-type]
    assert response.status == status
    assert body["error"] == oauth_error
    assert body["error_description"] == MESSAGE
    assert body.get("sekisho_reason", oauth_error) == reason
    assert response.headers["Cache-Control"] == "no-store"
    assert ("WWW-Authenticate" in response.headers) == (status == 401)
    assert ("Retry-After" in response.headers) == (status == 429)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
def test_gateway_answer(cls: type[ServiceError]) -> None:
    *_, gateway_status = _contract(cls)
    denied = denial(cls(MESSAGE), ROUTE)
    assert denied.status == gateway_status
    challenge = denied.headers.get("www-authenticate", "")
    expected_error = {400: "invalid_request", 401: "invalid_token", 403: "insufficient_scope"}
    if gateway_status in expected_error:
        assert challenge.startswith(f'Bearer error="{expected_error[gateway_status]}"')
    else:
        assert challenge == ""
        assert MESSAGE not in denied.body  # server-side refusals answer generic text
    assert ("retry-after" in denied.headers) == (gateway_status in (429, 503))
