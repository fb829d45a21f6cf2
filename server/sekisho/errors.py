"""The ServiceError tree: each class owns its wire mapping (docs/architecture.md §3).

Every class declares:
- `reason`: the OAuth error code of the contract, sent in the gRPC `ErrorInfo.reason`;
- `grpc_code`: the gRPC status name;
- `oauth_error` and `http_status`: what the RFC 8693 token endpoint sends (RFC 6749 §5.2);
- `bearer_error`: the RFC 6750 §3.1 code a gateway (ext_authz) answers with, "" when the refusal
  is not about the client's request (dependency down, rate limit, bug);
- `code`: a stable internal code for metrics and the audit line, finer than `reason` (an expired
  token and a bad signature share a reason on the wire but not a code).

One converter per transport reads these (rpc/status.py, http/token.py, gateway/authorizer.py);
nothing maps reasons by table. Domain code raises the most specific class. `public_message` is
what a caller sees and never carries token contents or internal causes; the precise cause goes to
logs through `log_detail`.
"""

from collections.abc import Mapping
from typing import ClassVar, Literal

BearerError = Literal["", "invalid_request", "invalid_token", "insufficient_scope"]


class ServiceError(Exception):
    """Base of every error a caller may see."""

    reason: ClassVar[str] = "server_error"
    grpc_code: ClassVar[str] = "INTERNAL"
    oauth_error: ClassVar[str] = "server_error"
    http_status: ClassVar[int] = 500
    bearer_error: ClassVar[BearerError] = ""
    code: ClassVar[str] = "server_error"
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        public_message: str = "",
        *,
        log_detail: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        public_message = public_message or self.default_message
        super().__init__(public_message)
        self.public_message = public_message
        self.log_detail = log_detail or public_message
        self.metadata: dict[str, str] = dict(metadata or {})


class InvalidRequestError(ServiceError):
    """Malformed request or unsupported parameter (RFC 8693 §2.2.2)."""

    reason = oauth_error = code = "invalid_request"
    grpc_code = "INVALID_ARGUMENT"
    http_status = 400
    bearer_error: ClassVar[BearerError] = "invalid_request"
    default_message = "invalid request"


class UnsupportedGrantTypeError(InvalidRequestError):
    """The token endpoint was asked for a grant other than token exchange: RFC 6749 §5.2's
    `unsupported_grant_type` on the wire; `reason` stays the contract's `invalid_request`."""

    oauth_error = "unsupported_grant_type"
    code = "grant_type_unsupported"
    default_message = "only the token-exchange grant is supported"


class RequestBodyError(InvalidRequestError):
    """The HTTP listener refused a request body before any handler read it (http/guard.py):
    `invalid_request` with the RFC 6749 §5.2 JSON body, under the HTTP status that says why.
    Raise a leaf below."""

    code = "request_body_refused"


class RequestTooLargeError(RequestBodyError):
    code = "request_too_large"
    http_status = 413
    default_message = "the request body is too large"


class RequestTooSlowError(RequestBodyError):
    code = "request_too_slow"
    http_status = 408
    default_message = "the request body did not arrive in time"


class ContentCodingError(RequestBodyError):
    code = "content_coding_unsupported"
    http_status = 415
    default_message = "a content-coded body is not accepted: send it as identity"


class TransferCodingError(RequestBodyError):
    """A transfer coding other than one `chunked`, the only framing aiohttp removes (RFC 9112
    §6.1 says 501; the contract's refusals are invalid_request, so 400)."""

    code = "transfer_coding_unsupported"
    default_message = (
        "a Transfer-Encoding other than chunked (once) is not accepted: send the body uncoded"
    )


class InvalidTokenError(InvalidRequestError):
    """The subject or actor token is unacceptable: RFC 8693 §2.2.2 says `invalid_request`.

    Raise a leaf below: the leaf's `code` says why (metrics, audit); the wire does not.
    """

    grpc_code = "UNAUTHENTICATED"
    bearer_error = "invalid_token"
    code = "token_invalid"
    default_message = "the subject or actor token is invalid"


class MalformedTokenError(InvalidTokenError):
    """Not a well-formed compact JWS, or a header or claim of the wrong shape (RFC 7515, 7519)."""

    code = "token_malformed"


class TokenTypeError(InvalidTokenError):
    """The JOSE `typ` is not acceptable for the declared token type (RFC 8725 §3.11)."""

    code = "token_wrong_type"


class UntrustedIssuerError(InvalidTokenError):
    """`iss` is missing, not a configured issuer, or Sekisho itself."""

    code = "issuer_untrusted"


class UnknownKeyError(InvalidTokenError):
    """The issuer publishes no key for the token's `kid`."""

    code = "key_unknown"


class AlgorithmNotAllowedError(InvalidTokenError):
    """Unsigned, or `alg` not allowed for the issuer or not of the key's type (RFC 8725 §3.1)."""

    code = "algorithm_not_allowed"


class BadSignatureError(InvalidTokenError):
    """The signature does not verify with the issuer's key."""

    code = "signature_invalid"


class TokenExpiredError(InvalidTokenError):
    """`exp` has passed (RFC 7519 §4.1.4), or too soon for a useful minted token."""

    code = "token_expired"


class TokenNotYetValidError(InvalidTokenError):
    """`nbf` or `iat` lies in the future beyond the leeway (RFC 7519 §4.1.5, §4.1.6)."""

    code = "token_not_yet_valid"


class MissingClaimError(InvalidTokenError):
    """A required claim (`exp`, `sub`) is absent or empty."""

    code = "claim_missing"


class AudienceMismatchError(InvalidTokenError):
    """`aud` (or, for access tokens, the client) is not one this issuer entry accepts."""

    code = "audience_mismatch"


class ClientNotAcceptedError(InvalidTokenError):
    """The ID token was issued to a client not in the issuer's `client_ids`."""

    code = "client_not_accepted"


class RequiredScopeMissingError(InvalidTokenError):
    """The access token lacks a scope its issuer entry requires (`required_scopes`)."""

    code = "required_scope_missing"


class VendorRuleError(InvalidTokenError):
    """The token breaks a rule of its issuer's vendor preset (identity/presets.py)."""

    code = "vendor_rule_failed"


class InvalidClientError(ServiceError):
    """The caller is not authenticated or not a registered client."""

    reason = oauth_error = code = "invalid_client"
    grpc_code = "UNAUTHENTICATED"
    http_status = 401
    bearer_error = "insufficient_scope"
    default_message = "client authentication failed"


class InvalidTargetError(ServiceError):
    """Audience or resource is not acceptable (RFC 8693 §2.2.2)."""

    reason = oauth_error = code = "invalid_target"
    grpc_code = "PERMISSION_DENIED"
    http_status = 400
    bearer_error = "insufficient_scope"
    default_message = "the requested audience or resource is not available"


class InvalidScopeError(ServiceError):
    """None of the requested scopes can be granted."""

    reason = oauth_error = code = "invalid_scope"
    grpc_code = "PERMISSION_DENIED"
    http_status = 400
    bearer_error = "insufficient_scope"
    default_message = "none of the requested scopes can be granted"


class AccessDeniedError(ServiceError):
    """Policy denied the exchange; the token endpoint says `invalid_grant` (RFC 6749 §5.2 has no
    access_denied), the precise reason riding in `sekisho_reason`."""

    reason = code = "access_denied"
    oauth_error = "invalid_grant"
    grpc_code = "PERMISSION_DENIED"
    http_status = 400
    bearer_error = "insufficient_scope"
    default_message = "the exchange was denied by policy"


# Refusals that share access_denied on the wire (the caller learns no more than "denied") but not
# the cause: each has its own `code` for the audit line and sekisho_refusals_total.


class RevokedError(AccessDeniedError):
    """`sekisho revoke` or `suspend` names the user, the caller, the audience or a resource."""

    code = "revoked"
    default_message = "the exchange was denied"


class ActorNotPermittedError(AccessDeniedError):
    """The actor token is neither named by the subject's `may_act` nor approved by policy."""

    code = "actor_not_permitted"


class NoClientIdError(AccessDeniedError):
    """No client id at the audience: not in the decision, `[[callers]] client_ids`, nor the
    subject token (docs/architecture.md §4 client_id rule)."""

    code = "client_id_unknown"
    default_message = (
        "no client id is known for this caller at the audience (operator: the policy "
        "decision's client_id, the caller's [[callers]] client_ids, or a subject token "
        "that names its client: an access token by the issuer's client_id_claims only, an ID "
        "token also by azp or a single aud)"
    )


class PolicyGrantError(AccessDeniedError):
    """Policy allowed, but its grant cannot be minted: a reserved claim, an ill-formed scope, a
    zero lifetime. A policy bug (or an attack through policy data): fail closed."""

    code = "policy_grant_invalid"


class InsufficientUserAuthenticationError(ServiceError):
    """Policy demands stronger user authentication (RFC 9470); metadata: acr_values, max_age."""

    reason = oauth_error = code = "insufficient_user_authentication"
    grpc_code = "FAILED_PRECONDITION"
    http_status = 400
    bearer_error = "insufficient_scope"
    default_message = "stronger user authentication is required"


class ConsentRequiredError(ServiceError):
    """Policy demands user consent first; metadata carries authorization_url. The token endpoint
    says `invalid_grant` with `sekisho_reason`, as for access_denied."""

    reason = code = "consent_required"
    oauth_error = "invalid_grant"
    grpc_code = "FAILED_PRECONDITION"
    http_status = 400
    bearer_error = "insufficient_scope"
    default_message = "the user must consent before this exchange"


class TemporarilyUnavailableError(ServiceError):
    """A dependency (IdP JWKS, policy engine, key backend) is unreachable: fail closed."""

    reason = oauth_error = code = "temporarily_unavailable"
    grpc_code = "UNAVAILABLE"
    http_status = 503
    default_message = "temporarily unavailable"


class DeadlineExceededError(TemporarilyUnavailableError):
    """The caller's deadline passed during the exchange: the work is abandoned, nothing minted."""

    grpc_code = "DEADLINE_EXCEEDED"
    code = "deadline_exceeded"


class SlowDownError(ServiceError):
    """The caller is rate limited."""

    reason = oauth_error = code = "slow_down"
    grpc_code = "RESOURCE_EXHAUSTED"
    http_status = 429
    default_message = "slow down"


class ServerError(ServiceError):
    """A bug: the caller gets a generic message and the request id."""


class ConfigError(Exception):
    """The configuration is invalid; the message names the offending key."""


def listen_failed(key: str, listen: str, why: str) -> ConfigError:
    """A listener (gRPC, public HTTP, admin) that cannot bind, named by its config key."""
    return ConfigError(f"config key '{key}': cannot listen on {listen}: {why}")


class PolicyLoadError(Exception):
    """A policy or data file failed to load or compile."""


class KeyStoreError(Exception):
    """The keystore is missing, corrupt, or an operation on it is not allowed."""


class KeyStoreMissingError(KeyStoreError):
    """No keyring.json in the keystore folder: `sekisho keys init` was not run for this config.

    The CLI names the config to init with (`--config` left out is the usual cause: the keys then
    land in var/keys under the current directory, docs/operators.md "Troubleshooting").
    """

    def __init__(self, missing: str) -> None:
        # missing: what was looked for, "no keystore at DIR" or "no keys under alias/PREFIX/".
        super().__init__(f"{missing} (run `sekisho keys init`)")
        self.missing = missing


def service_error_classes() -> tuple[type[ServiceError], ...]:
    """ServiceError and every subclass, depth first: what the wire-mapping tests walk."""
    found: list[type[ServiceError]] = []
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(reversed(cls.__subclasses__()))
    return tuple(found)


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
