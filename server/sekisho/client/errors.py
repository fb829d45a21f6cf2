"""Typed exceptions for callers of ExchangeToken, built from the gRPC status and its ErrorInfo
(docs/architecture.md §3): each carries the OAuth `reason` and, for step-up and consent, what the
caller must show the user (`acr_values`/`max_age`, `authorization_url`)."""

from collections.abc import Mapping


class ExchangeError(Exception):
    """Sekisho refused or could not answer; `reason` is the OAuth error code."""

    def __init__(
        self, reason: str, message: str, code: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.code = code
        self.metadata: dict[str, str] = dict(metadata or {})

    @property
    def authorization_url(self) -> str:
        return self.metadata.get("authorization_url", "")

    @property
    def acr_values(self) -> str:
        return self.metadata.get("acr_values", "")

    @property
    def max_age(self) -> int:
        return int(self.metadata.get("max_age", "0") or 0)


class InvalidExchangeRequestError(ExchangeError):
    """invalid_request: a bad parameter or an unacceptable subject/actor token."""


class CallerNotAuthenticatedError(ExchangeError):
    """invalid_client: this workload is not a registered caller."""


class ExchangeDeniedError(ExchangeError):
    """access_denied, invalid_target or invalid_scope: policy says no."""


class StepUpRequiredError(ExchangeError):
    """insufficient_user_authentication: re-authenticate the user per `acr_values`/`max_age`."""


class ConsentRequiredError(ExchangeError):
    """consent_required: send the user to `authorization_url`."""


class ExchangeUnavailableError(ExchangeError):
    """temporarily_unavailable (or no answer within the deadline): retryable."""


class RateLimitedError(ExchangeError):
    """slow_down: the caller is rate limited."""


ERRORS_BY_REASON: Mapping[str, type[ExchangeError]] = {
    "invalid_request": InvalidExchangeRequestError,
    "invalid_client": CallerNotAuthenticatedError,
    "access_denied": ExchangeDeniedError,
    "invalid_target": ExchangeDeniedError,
    "invalid_scope": ExchangeDeniedError,
    "insufficient_user_authentication": StepUpRequiredError,
    "consent_required": ConsentRequiredError,
    "temporarily_unavailable": ExchangeUnavailableError,
    "slow_down": RateLimitedError,
}


def error_for(
    reason: str, message: str, code: str, metadata: Mapping[str, str] | None = None
) -> ExchangeError:
    """The typed exception for an OAuth reason (ExchangeError for anything unknown)."""
    return ERRORS_BY_REASON.get(reason, ExchangeError)(reason, message, code, metadata)
