"""TokenExchangeService: translates protobuf messages to the transport-neutral pipeline."""

import asyncio
from typing import Any

import grpc

from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.callers import CallerRegistry
from sekisho.errors import ServiceError
from sekisho.exchange import TokenExchanger
from sekisho.models import Caller, ExchangeResult
from sekisho.rpc.peer import PeerIdentities
from sekisho.rpc.structs import TooManyValuesError, struct_to_dict
from sekisho.signing.keyring import Keyring
from sekisho.validation import (
    MAX_STRUCT_WIRE_BYTES_PER_JSON_BYTE,
    ExchangeParams,
    RequestLimits,
    check_context_wire_size,
    context_too_big,
    max_context_values,
)


def params_of(message: Any, limits: RequestLimits) -> ExchangeParams:
    """ExchangeTokenRequest → the transport-neutral parameters (proto field names per RFC 8693)."""
    return ExchangeParams(
        subject_token=message.subject_token,
        subject_token_type=message.subject_token_type,
        requested_token_type=message.requested_token_type,
        audience=message.audience,
        # The repeated fields as they are: validation counts them before reading any value.
        resources=message.resource,
        scopes=message.scope,
        actor_token=message.actor_token,
        actor_token_type=message.actor_token_type,
        context=_context_of(message, limits),
        requested_lifetime_seconds=message.requested_lifetime_seconds,
    )


# What a field of ExchangeTokenRequest takes beyond its value on the wire: a one-byte tag and a
# length of up to 3 bytes (values under 2 MiB); an int64 field, tag and a 10-byte varint.
_STRING_FIELD_OVERHEAD = 4
_INT64_FIELD_BYTES = 11
# Room for fields a newer client sends that this server's message does not know (proto3 skips
# them): the contract grows additively.
_UNKNOWN_FIELDS_ROOM = 1024


def largest_request_bytes(limits: RequestLimits) -> int:
    """The encoded size of the largest ExchangeTokenRequest validation can accept; a longer one is
    refused before it is decoded (rpc/admission_gate.py). Audience, resources and scopes are
    ASCII when valid (URI characters, RFC 6749 scope tokens), so their character limits are
    byte limits; the three token-type URNs are given max_value_length each, far more than any
    supported one; the context is bounded on the wire by check_context_wire_size."""
    string = _STRING_FIELD_OVERHEAD
    return (
        2 * (limits.max_token_bytes + string)  # subject_token, actor_token
        + 4 * (limits.max_value_length + string)  # audience and the three token types
        + limits.max_resources * (limits.max_value_length + string)
        + limits.max_scopes * (limits.max_scope_length + string)
        + MAX_STRUCT_WIRE_BYTES_PER_JSON_BYTE * limits.max_context_bytes
        + string
        + _INT64_FIELD_BYTES
        + _UNKNOWN_FIELDS_ROOM
    )


def _context_of(message: Any, limits: RequestLimits) -> dict[str, Any]:
    """The request's `context` Struct as JSON.

    Raises: InvalidRequestError (too big to be within the limits, NaN or Infinity).
    """
    if not message.HasField("context"):
        return {}
    check_context_wire_size(message.context.ByteSize(), limits)  # before the Python walk
    try:
        return struct_to_dict(message.context, max_context_values(limits))
    except TooManyValuesError:
        raise context_too_big(limits) from None


def response_of(result: ExchangeResult) -> Any:
    """ExchangeResult → ExchangeTokenResponse."""
    minted = result.minted
    return pb.ExchangeTokenResponse(
        access_token=minted.token,
        issued_token_type=minted.issued_token_type,
        token_type=minted.token_type,
        expires_in=result.expires_in,
        scope=list(minted.scopes),
        resource=list(minted.resources),
        audience=minted.audience,
        jti=minted.jti,
        decision_id=result.decision_id,
    )


class _GrpcCall:
    """One ExchangeToken call as the pipeline reads it (exchange.ExchangeCall)."""

    __slots__ = ("_callers", "_context", "_limits", "_message", "_peers")

    def __init__(
        self,
        message: Any,
        context: grpc.aio.ServicerContext[Any, Any],
        peers: PeerIdentities,
        callers: CallerRegistry,
        limits: RequestLimits,
    ) -> None:
        self._message = message
        self._context = context
        self._peers = peers
        self._callers = callers
        self._limits = limits

    async def caller(self) -> Caller:
        # An unreadable client certificate is an InvalidClientError too: audited like the rest.
        return self._callers.authenticate(self._peers.of(self._context))

    async def params(self) -> ExchangeParams:
        return params_of(self._message, self._limits)


class TokenExchangeServicer(pb_grpc.TokenExchangeServiceServicer):
    """gRPC adapter over TokenExchanger and the keyring's JWKS."""

    def __init__(
        self,
        exchanger: TokenExchanger,
        keyring: Keyring,
        *,
        callers: CallerRegistry,
    ) -> None:
        # Required, never defaulted to "no client authentication": a composition that forgot the
        # registry would serve without the mTLS requirement, silently.
        self._exchanger = exchanger
        self._keyring = keyring
        self._callers = callers
        self._peers = PeerIdentities()

    async def ExchangeToken(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = _GrpcCall(request, context, self._peers, self._callers, self._exchanger.limits)
        try:
            result = await self._exchanger.handle(
                call, time_budget=context.time_remaining(), flow=context.peer()
            )
            return response_of(result)
        except (ServiceError, grpc.aio.AbortError, asyncio.CancelledError):
            raise  # the interceptor maps ServiceError to its status
        except Exception as exc:  # the RPC boundary: INTERNAL without detail, audited
            raise self._exchanger.crashed(exc) from exc

    async def GetJwks(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return pb.GetJwksResponse(jwks=self._keyring.jwks_bytes.decode())
