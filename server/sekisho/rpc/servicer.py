"""TokenExchangeService: translates protobuf messages to the transport-neutral pipeline."""

from typing import Any

import grpc
from google.protobuf import json_format

from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.callers import CallerRegistry
from sekisho.errors import ServiceError
from sekisho.exchange import TokenExchanger
from sekisho.models import Caller, ExchangeRequest
from sekisho.rpc.peer import PeerIdentities
from sekisho.signing.keyring import Keyring
from sekisho.validation import RequestLimits, build_request


class TokenExchangeServicer(pb_grpc.TokenExchangeServiceServicer):
    """gRPC adapter over TokenExchanger and the keyring's JWKS."""

    def __init__(
        self,
        exchanger: TokenExchanger,
        keyring: Keyring,
        limits: RequestLimits,
        *,
        callers: CallerRegistry | None = None,
    ) -> None:
        self._exchanger = exchanger
        self._keyring = keyring
        self._limits = limits
        self._callers = callers or CallerRegistry((), require_client_auth=False)
        self._peers = PeerIdentities()

    async def ExchangeToken(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        caller = Caller()
        try:
            caller = self._callers.authenticate(self._peers.of(context))
            exchange_request = self._build(request, caller)
        except ServiceError as error:
            self._exchanger.refused(error, None, caller)
            raise
        result = await self._exchanger.exchange(
            exchange_request, time_budget=context.time_remaining()
        )
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

    def _build(self, request: Any, caller: Caller) -> ExchangeRequest:
        return build_request(
            subject_token=request.subject_token,
            subject_token_type=request.subject_token_type,
            requested_token_type=request.requested_token_type,
            audience=request.audience,
            resources=list(request.resource),
            scopes=list(request.scope),
            actor_token=request.actor_token,
            actor_token_type=request.actor_token_type,
            context=json_format.MessageToDict(request.context)
            if request.HasField("context")
            else {},
            requested_lifetime_seconds=request.requested_lifetime_seconds,
            caller=caller,
            limits=self._limits,
        )

    async def GetJwks(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return pb.GetJwksResponse(jwks=self._keyring.jwks_bytes.decode())
