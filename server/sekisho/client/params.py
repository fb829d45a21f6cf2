"""One ExchangeToken request as the caller states it, checked before anything reads it.

Every string goes on the wire as protobuf UTF-8, and the subject and actor tokens are hashed
(UTF-8) into the cache key: a string holding a lone surrogate ("\\ud800", which Python strings
allow and UTF-8 cannot encode, e.g. a token decoded with `surrogateescape` or cut from JSON
`"\\ud800"`) raised a bare UnicodeEncodeError from deep inside the SDK (the cache's hash or
protobuf), not the typed error a caller catches (red team). It is refused here, as
`InvalidExchangeRequestError` naming the parameter, never echoing its value (a token).
"""

from dataclasses import dataclass

from sekisho.client.cache import CacheKey, cache_key
from sekisho.client.errors import InvalidExchangeRequestError
from sekisho.constants import TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN


@dataclass(frozen=True, slots=True)
class ExchangeParams:
    """One exchange request, as the caller states it."""

    subject_token: str
    audience: str
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    requested_token_type: str = TOKEN_TYPE_ID_JAG
    subject_token_type: str = TOKEN_TYPE_ID_TOKEN
    # The acting agent's own token (RFC 8693 §2.1 actor_token); "" when the caller acts as itself.
    actor_token: str = ""
    actor_token_type: str = TOKEN_TYPE_ID_TOKEN

    def key(self) -> CacheKey:
        return cache_key(
            self.subject_token,
            self.audience,
            self.resources,
            self.scopes,
            self.requested_token_type,
            subject_token_type=self.subject_token_type,
            actor_token=self.actor_token,
            actor_token_type=self.actor_token_type,
        )


def checked(params: ExchangeParams) -> ExchangeParams:
    """`params`, once every string in it can be sent (module docstring).

    Raises: InvalidExchangeRequestError (INVALID_ARGUMENT, no RPC) naming the first parameter
        that is not a string UTF-8 can encode.
    """
    for name in _SINGLE_FIELDS:
        _check_text(name, getattr(params, name))
    for name in ("resources", "scopes"):
        for index, value in enumerate(getattr(params, name)):
            _check_text(f"{name}[{index}]", value)
    return params


_SINGLE_FIELDS = (
    "subject_token",
    "audience",
    "requested_token_type",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
)


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise _refused(f"{name} must be a string, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        position = exc.start
    else:
        return
    # Raised outside the handler: the UnicodeEncodeError, whose `object` is the whole value (a
    # token), is neither the cause nor the context of the error a caller may log.
    raise _refused(f"{name} is not valid Unicode text (a lone surrogate at position {position})")


def _refused(message: str) -> InvalidExchangeRequestError:
    return InvalidExchangeRequestError("invalid_request", message, "INVALID_ARGUMENT")
