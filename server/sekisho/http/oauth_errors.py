"""The RFC 6749 §5.2 error answer of the HTTP listener: the token endpoint's refusals, and the
connection guard's refusals of a request body (too large, too slow, content-coded), which only a
token request carries (everything else the listener serves is a GET). Every answer
`Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1)."""

from typing import Any

from aiohttp import web

from sekisho import identifiers
from sekisho.errors import ServiceError, SlowDownError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(error: ServiceError) -> web.Response:
    """RFC 6749 §5.2 JSON body; never echoes request values (they may be secrets)."""
    body: dict[str, Any] = {"error": error.oauth_error, "error_description": error.public_message}
    if error.oauth_error != error.reason:
        body["sekisho_reason"] = error.reason
    for name in ("acr_values", "max_age", "authorization_url", "request_id", "decision_id"):
        if name in error.metadata:
            body[name] = error.metadata[name]
    headers = dict(NO_STORE)
    if isinstance(error, SlowDownError):
        headers["Retry-After"] = error.metadata.get("retry_after", "1")
    if error.http_status == 401:
        # RFC 6749 §5.2: a 401 invalid_client MUST carry WWW-Authenticate for the scheme used.
        headers["WWW-Authenticate"] = 'Basic realm="sekisho", charset="UTF-8"'
    return web.json_response(body, status=error.http_status, headers=headers)


def refusal_response(error: ServiceError, request: web.Request) -> web.Response:
    """error_response for a request refused before the exchange pipeline ran (a method other
    than POST, a body the guard refused), with the request id in the body and the
    `X-Request-Id` header as the pipeline's own refusals: the caller's, else a new one."""
    request_id = identifiers.request_id(request.headers.get(identifiers.REQUEST_ID_HEADER))
    error.metadata.setdefault("request_id", request_id)
    response = error_response(error)
    response.headers[identifiers.REQUEST_ID_HEADER] = request_id
    return response
