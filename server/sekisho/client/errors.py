"""Typed exceptions for callers of ExchangeToken, built from the gRPC status and its ErrorInfo
(docs/architecture.md §3): each carries the OAuth `reason`, the gRPC `code`, the ids an operator
finds the audit line by (`request_id`, `decision_id`), `retry_after` when the service (or this
client) names a wait, and, for step-up and consent, what the caller must show the user
(`acr_values`/`max_age`, `authorization_url`)."""

import math
from collections.abc import Mapping
from typing import ClassVar

# The longest wait a refusal can impose on this client. TokenExchangeClient holds every call
# (every user, every audience) until the server's retry_after has passed, failing at once those
# that cannot wait it out: one answer of `retry_after: "inf"` (or 1e9) from a broken server or
# whatever answers for it stopped the client until it was restarted (red team session 13). A
# server whose bucket is slower refuses the call after this again, at the cost of one RPC.
MAX_RETRY_AFTER_SECONDS = 300.0


class ExchangeError(Exception):
    """Sekisho refused or could not answer; `reason` is the OAuth error code."""

    # Whether Sekisho refused this very request (its verdict on the user's token, the caller,
    # the target or the policy), as opposed to not serving it (overload, a dependency down, a
    # fault, an unknown reason): only such a refusal is evidence against a token cached for
    # the same request (exchanger.py drops it when a refresh is refused so).
    refuses_the_request: ClassVar[bool] = False

    def __init__(
        self, reason: str, message: str, code: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        self.reason = reason
        self.code = code
        self.metadata: dict[str, str] = dict(metadata or {})
        # The request id in the text too: a logged exception is what reaches the operator.
        shown = f" (request_id {self.request_id})" if self.request_id else ""
        super().__init__(f"{reason}: {message}{shown}")

    @property
    def request_id(self) -> str:
        """The service's id of the call ("" when it never answered): `sekisho audit show`."""
        return self.metadata.get("request_id", "")

    @property
    def decision_id(self) -> str:
        """The policy decision's id ("" when policy was not asked)."""
        return self.metadata.get("decision_id", "")

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait before calling again, when the service (slow_down, overload) or the
        client's own throttle names one, at most MAX_RETRY_AFTER_SECONDS; None otherwise."""
        try:
            seconds = float(self.metadata["retry_after"])
        except (KeyError, ValueError):
            return None
        if math.isnan(seconds):
            return None
        return min(MAX_RETRY_AFTER_SECONDS, max(0.0, seconds))

    @property
    def authorization_url(self) -> str:
        return self.metadata.get("authorization_url", "")

    @property
    def acr_values(self) -> str:
        return self.metadata.get("acr_values", "")

    @property
    def max_age(self) -> int:
        """Seconds since the user's last authentication the service accepts (OIDC Core
        §3.1.2.1 `max_age`); 0 when absent or not ASCII digits. int() of whatever arrived
        raised ValueError from this property, in the caller's step-up handler, for a value
        such as "300.0" from whatever answers for Sekisho, and read fullwidth digits as
        digits (red team session 20)."""
        value = self.metadata.get("max_age", "")
        return int(value) if value.isascii() and value.isdigit() else 0


class InvalidExchangeRequestError(ExchangeError):
    """invalid_request: a bad parameter or an unacceptable subject/actor token."""

    refuses_the_request = True


class CallerNotAuthenticatedError(ExchangeError):
    """invalid_client: this workload is not a registered caller."""

    refuses_the_request = True


class ExchangeDeniedError(ExchangeError):
    """access_denied, invalid_target or invalid_scope: policy says no."""

    refuses_the_request = True


class StepUpRequiredError(ExchangeError):
    """insufficient_user_authentication: re-authenticate the user per `acr_values`/`max_age`."""

    refuses_the_request = True


class ConsentRequiredError(ExchangeError):
    """consent_required: send the user to `authorization_url`."""

    refuses_the_request = True


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
