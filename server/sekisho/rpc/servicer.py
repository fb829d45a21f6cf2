"""TokenExchangeService: translates protobuf messages to the transport-neutral pipeline."""

from typing import Any

import grpc
from google.protobuf import json_format

from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.exchange import TokenExchanger
from sekisho.models import Caller
from sekisho.signing.keyring import Keyring
from sekisho.validation import RequestLimits, build_request


class TokenExchangeServicer(pb_grpc.TokenExchangeServiceServicer):
    """gRPC adapter over TokenExchanger and the keyring's JWKS."""

    def __init__(self, exchanger: TokenExchanger, keyring: Keyring, limits: RequestLimits) -> None:
        self._exchanger = exchanger
        self._keyring = keyring
        self._limits = limits

    async def ExchangeToken(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        exchange_request = build_request(
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
            caller=Caller(),
            limits=self._limits,
        )
        result = await self._exchanger.exchange(exchange_request)
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

    async def GetJwks(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        return pb.GetJwksResponse(jwks=self._keyring.jwks_bytes.decode())
