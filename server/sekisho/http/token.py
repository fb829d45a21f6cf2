"""`POST /oauth2/token`: RFC 8693 token exchange over HTTP, into the one exchange pipeline.

Form-encoded request (RFC 8693 §2.1; `resource`, `audience` and `scope` as RFC 8693/8707 define
them), client authentication per client_auth.py, success per RFC 8693 §2.2.1, errors per
RFC 6749 §5.2, every response `Cache-Control: no-store` and `Pragma: no-cache` (RFC 6749 §5.1).

The error code and HTTP status are the ServiceError class's own (`oauth_error`, `http_status`,
errors.py): reasons that are not RFC 6749 §5.2 token-endpoint codes (`access_denied`,
`consent_required`) go out as `invalid_grant` with the precise reason in `sekisho_reason`;
`temporarily_unavailable` keeps its name with HTTP 503 so clients can retry.
"""

import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from encodings import normalize_encoding
from encodings.aliases import aliases
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from sekisho import identifiers
from sekisho.callers import CallerRegistry
from sekisho.constants import GRANT_TYPE_TOKEN_EXCHANGE
from sekisho.errors import (
    InvalidClientError,
    InvalidRequestError,
    RequestTooLargeError,
    ServiceError,
    UnsupportedGrantTypeError,
)
from sekisho.exchange import TokenExchanger
from sekisho.http.client_auth import ClientAuthenticator
from sekisho.http.oauth_errors import NO_STORE, error_response
from sekisho.identity.peer import PeerIdentity, identity_from_der
from sekisho.models import Caller, ExchangeResult
from sekisho.validation import ExchangeParams

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth2/token"
# RFC 2978 §2.3: a charset name is at most 40 characters.
MAX_CHARSET_NAME = 40
# The names the codec registry reads as UTF-8 or US-ASCII (`encodings.aliases`, normalized).
_UTF8_NAMES = frozenset(
    {"utf_8", "ascii"} | {name for name, codec in aliases.items() if codec in ("utf_8", "ascii")}
)
_SINGLE = (
    "grant_type",
    "subject_token",
    "subject_token_type",
    "requested_token_type",
    "audience",
    "scope",
    "actor_token",
    "actor_token_type",
    "client_id",
    "client_assertion",
    "client_assertion_type",
    "client_secret",
)


def success_response(result: ExchangeResult) -> web.Response:
    """RFC 8693 §2.2.1."""
    minted = result.minted
    body: dict[str, Any] = {
        "access_token": minted.token,
        "issued_token_type": minted.issued_token_type,
        "token_type": minted.token_type,
        "expires_in": result.expires_in,
        "scope": " ".join(minted.scopes),
    }
    return web.json_response(body, headers=NO_STORE)


def _peer_identity(request: web.Request) -> PeerIdentity | None:
    """The verified client certificate's identity (the TLS layer checked it against the CA)."""
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return identity_from_der(der) if der else None


def _single_values(form: MultiDictProxy[Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name in _SINGLE:
        found = form.getall(name, [])
        if len(found) > 1:
            # RFC 6749 §3.2: request parameters MUST NOT be included more than once.
            raise InvalidRequestError(f"{name} appears more than once")
        if found:
            if not isinstance(found[0], str):
                raise InvalidRequestError(f"{name} must be a form field")
            values[name] = found[0]
    return values


class TokenEndpoint:
    """The aiohttp handler: parse, authenticate the client, run the pipeline, answer."""

    def __init__(
        self,
        exchanger: TokenExchanger,
        authenticator: ClientAuthenticator | None,
        clock: Callable[[], float],
        *,
        callers: CallerRegistry,
        request_id: contextvars.ContextVar[str] | None = None,
    ) -> None:
        self._exchanger = exchanger
        self._authenticator = authenticator
        self._clock = clock
        self._callers = callers  # required: no silent "no client authentication" default
        self._request_id = request_id

    @property
    def auth_methods(self) -> list[str]:
        """RFC 8414 `token_endpoint_auth_methods_supported` for this endpoint."""
        methods = ["client_secret_basic", "private_key_jwt"] if self._authenticator else []
        if self._callers.registered:
            methods.append("tls_client_auth")  # RFC 8705 §2.1.1
        return methods

    async def handle(self, request: web.Request) -> web.Response:
        request_id = identifiers.request_id(request.headers.get(identifiers.REQUEST_ID_HEADER))
        if self._request_id is not None:
            self._request_id.set(request_id)
        try:
            call = _FormCall(request, self._authenticate)
            result = await self._exchanger.handle(call, flow=request.remote or "")
            response = success_response(result)
        except ServiceError as error:
            log.info(
                "token_endpoint_refused",
                extra={"reason": error.reason, "detail": error.log_detail},
            )
            error.metadata.setdefault("request_id", request_id)
            response = error_response(error)
        except web.HTTPException:
            raise  # aiohttp's own answers (the body and field bounds are refused before this)
        except Exception as exc:  # the HTTP boundary: server_error without detail, audited
            response = error_response(self._exchanger.crashed(exc))
        # The id correlates the response with the audit line.
        response.headers[identifiers.REQUEST_ID_HEADER] = request_id
        return response

    async def _authenticate(self, request: web.Request, values: Mapping[str, str]) -> Caller:
        if len(request.headers.getall("Authorization", ())) > 1:
            # Not a list-based field (RFC 9110 §11.6.2): two are two credentials, and only the
            # first was read, so a second Basic credential beside an assertion (or a proxy that
            # reads the last one) went unseen (red team session 20). RFC 6749 §5.2: more than
            # one client authentication mechanism is invalid_request.
            raise InvalidRequestError("the Authorization header appears more than once")
        peer = _peer_identity(request)
        if peer is not None or self._callers.client_auth_required:
            # RFC 8705 §2 (tls_client_auth): the certificate is the client's credential, and
            # RFC 6749 §2.3 forbids presenting a second one.
            caller = self._callers.authenticate(peer)
            if "Authorization" in request.headers or {"client_assertion", "client_secret"} & set(
                values
            ):
                raise InvalidRequestError("use exactly one client authentication method")
            if "client_id" in values and values["client_id"] != caller.id:
                # RFC 8705 §2: the client_id names the client the certificate authenticates.
                # Ignored, another name rode beside the certificate's, for whatever reads the
                # form after Sekisho (a proxy's log, a gateway keying clients) to believe
                # (red team session 20).
                raise InvalidClientError(
                    log_detail=f"client_id is not the certificate's client {caller.id!r}"
                )
            return caller
        if self._authenticator is None:
            raise InvalidClientError("client authentication is required")
        return await self._authenticator.authenticate(
            request.headers.get("Authorization", ""),
            values,
            self._clock(),
            peer=request.remote or "",
        )


def params_of(values: Mapping[str, str], form: MultiDictProxy[Any]) -> ExchangeParams:
    """The form's RFC 8693 §2.1 parameters (`scope` space-separated, `resource` repeatable).

    Raises: InvalidRequestError when grant_type is missing or a resource is a file,
    UnsupportedGrantTypeError when grant_type names another grant (RFC 6749 §5.2).
    """
    grant_type = values.get("grant_type", "")
    if not grant_type:
        raise InvalidRequestError(f"grant_type is required ({GRANT_TYPE_TOKEN_EXCHANGE})")
    if grant_type != GRANT_TYPE_TOKEN_EXCHANGE:
        # Not echoed: a caller's parameter may be anything, a secret pasted in the wrong field too.
        raise UnsupportedGrantTypeError(
            f"grant_type must be {GRANT_TYPE_TOKEN_EXCHANGE}",
            log_detail="unsupported grant_type",
        )
    resources = form.getall("resource", [])
    if not all(isinstance(r, str) for r in resources):
        raise InvalidRequestError("resource must be a form field")
    return ExchangeParams(
        subject_token=values.get("subject_token", ""),
        subject_token_type=values.get("subject_token_type", ""),
        requested_token_type=values.get("requested_token_type", ""),
        audience=values.get("audience", ""),
        resources=resources,
        # RFC 6749 §3.3: scope tokens are separated by SP (%x20) only; str.split() would also
        # split on tabs, \x1c-\x1f and U+2028, giving one string two meanings.
        scopes=[s for s in values.get("scope", "").split(" ") if s],
        actor_token=values.get("actor_token", ""),
        actor_token_type=values.get("actor_token_type", ""),
    )


def _utf8_compatible(charset: str | None) -> bool:
    """Whether a declared form charset reads as UTF-8: none declared, or a name Python's codec
    aliases give to UTF-8 or US-ASCII (a subset), normalized as the codec registry matches it.

    Never handed to codecs.lookup (red team session 18): the `encodings` search function keeps
    every name it cannot find, for good, so each made-up charset (up to aiohttp's 8 KiB header
    line) grew an unauthenticated service's memory (20,000 names of 8 KB: +163 MB, ~0.6 ms of
    CPU each)."""
    if charset is None:
        return True
    if len(charset) > MAX_CHARSET_NAME:
        return False
    return normalize_encoding(charset.lower()) in _UTF8_NAMES


Authenticate = Callable[[web.Request, Mapping[str, str]], Awaitable[Caller]]


class _FormCall:
    """One POST as the pipeline reads it (exchange.ExchangeCall): the form is read while
    authenticating, because client credentials may be in it (RFC 6749 §2.3.1)."""

    __slots__ = ("_authenticate", "_form", "_request", "_values")

    def __init__(self, request: web.Request, authenticate: Authenticate) -> None:
        self._request = request
        self._authenticate = authenticate
        self._form: MultiDictProxy[Any] | None = None
        self._values: dict[str, str] = {}

    async def caller(self) -> Caller:
        if self._request.content_type != "application/x-www-form-urlencoded":
            raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
        if not _utf8_compatible(self._request.charset):
            # RFC 6749 §B: the form is UTF-8. aiohttp splits the raw bytes at `&` and `=` and
            # decodes each value in the declared charset with replacement: a UTF-16 or UTF-32
            # form came out as a grant_type of CJK and U+FFFD characters rather than an error
            # (session 17), one body with two readings. Refused before it is read.
            raise InvalidRequestError("the form must be UTF-8 encoded")
        try:
            # No LookupError: post() decodes in the charset just checked, which names a codec.
            self._form = await self._request.post()
        except ValueError as exc:  # UnicodeDecodeError: bytes that are not UTF-8
            raise InvalidRequestError("the form must be UTF-8 encoded") from exc
        except web.HTTPRequestEntityTooLarge as exc:
            # aiohttp's bound on the fields it parses (1,000; the body itself is read already,
            # within client_max_size): its own plain-text 413 passed through, unaudited and
            # without the request id (red team session 18).
            raise RequestTooLargeError("the form has too many fields") from exc
        self._values = _single_values(self._form)
        return await self._authenticate(self._request, self._values)

    async def params(self) -> ExchangeParams:
        assert self._form is not None, "caller() reads the form first"
        return params_of(self._values, self._form)
