"""The ServiceError tree: each class owns its OAuth error code and its gRPC status name.

Only the rpc/ and http/ layers turn these into wire responses; domain code raises them.
`public_message` is what a caller sees and never carries token contents or internal causes;
the precise cause goes to logs through `log_detail`.
"""

from collections.abc import Mapping


class ServiceError(Exception):
    """Base of every error a caller may see."""

    reason = "server_error"
    grpc_code = "INTERNAL"
    http_status = 500

    def __init__(
        self,
        public_message: str,
        *,
        log_detail: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(public_message)
        self.public_message = public_message
        self.log_detail = log_detail or public_message
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidRequestError(ServiceError):
    """Malformed request or unsupported parameter (RFC 8693 §2.2.2)."""

    reason = "invalid_request"
    grpc_code = "INVALID_ARGUMENT"
    http_status = 400


class InvalidTokenError(InvalidRequestError):
    """The subject or actor token is unacceptable: RFC 8693 §2.2.2 says `invalid_request`."""

    grpc_code = "UNAUTHENTICATED"


class InvalidClientError(ServiceError):
    """The caller is not authenticated or not a registered client."""

    reason = "invalid_client"
    grpc_code = "UNAUTHENTICATED"
    http_status = 401


class InvalidTargetError(ServiceError):
    """Audience or resource is not acceptable (RFC 8693 §2.2.2)."""

    reason = "invalid_target"
    grpc_code = "PERMISSION_DENIED"
    http_status = 400


class InvalidScopeError(ServiceError):
    """None of the requested scopes can be granted."""

    reason = "invalid_scope"
    grpc_code = "PERMISSION_DENIED"
    http_status = 400


class AccessDeniedError(ServiceError):
    """Policy denied the exchange."""

    reason = "access_denied"
    grpc_code = "PERMISSION_DENIED"
    http_status = 403


class InsufficientUserAuthenticationError(ServiceError):
    """Policy demands stronger user authentication (RFC 9470); metadata: acr_values, max_age."""

    reason = "insufficient_user_authentication"
    grpc_code = "FAILED_PRECONDITION"
    http_status = 401


class ConsentRequiredError(ServiceError):
    """Policy demands user consent first; metadata carries authorization_url."""

    reason = "consent_required"
    grpc_code = "FAILED_PRECONDITION"
    http_status = 403


class TemporarilyUnavailableError(ServiceError):
    """A dependency (IdP JWKS, policy engine, key backend) is unreachable: fail closed."""

    reason = "temporarily_unavailable"
    grpc_code = "UNAVAILABLE"
    http_status = 503


class DeadlineExceededError(TemporarilyUnavailableError):
    """The caller's deadline passed during the exchange: the work is abandoned, nothing minted."""

    grpc_code = "DEADLINE_EXCEEDED"


class SlowDownError(ServiceError):
    """The caller is rate limited."""

    reason = "slow_down"
    grpc_code = "RESOURCE_EXHAUSTED"
    http_status = 429


class ServerError(ServiceError):
    """A bug: the caller gets a generic message and the request id."""


class ConfigError(Exception):
    """The configuration is invalid; the message names the offending key."""


class PolicyLoadError(Exception):
    """A policy or data file failed to load or compile."""


class KeyStoreError(Exception):
    """The keystore is missing, corrupt, or an operation on it is not allowed."""


DECISION_ERRORS: Mapping[str, type[ServiceError]] = {
    cls.reason: cls
    for cls in (
        AccessDeniedError,
        InvalidTargetError,
        InvalidScopeError,
        InsufficientUserAuthenticationError,
        ConsentRequiredError,
    )
}
