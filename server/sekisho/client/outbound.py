"""Attach a Sekisho token to outbound calls: `SekishoAuth` for httpx, `SekishoTokenInterceptor`
for gRPC. Both ask the (cached) client per request, so a token is reused until it nears expiry.

The subject token comes from a callable, because it belongs to the user of the current request
(typically read from a contextvar the runtime set when the request came in).
"""

import asyncio
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx

from sekisho.client.cache import ExchangedToken
from sekisho.client.challenges import parse_challenges
from sekisho.client.exchanger import TokenExchangeClient
from sekisho.client.sync import SyncTokenExchangeClient
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN


@dataclass(frozen=True, slots=True)
class Downstream:
    """What to ask Sekisho for when calling one downstream."""

    audience: str
    resources: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    requested_token_type: str = TOKEN_TYPE_ACCESS_TOKEN


def _token_refused(response: httpx.Response) -> bool:
    """A 401 with a Bearer challenge whose `error` says the token itself is bad (RFC 6750 §3.1
    invalid_token): revoked, signed by a revoked key, expired early. Not insufficient_scope,
    not a 403. Every challenge of every WWW-Authenticate header is read (RFC 9110 §11.6.1: a
    downstream may offer DPoP or Basic first); only the first header's start was (red team)."""
    if response.status_code != 401:
        return False
    challenges = parse_challenges(response.headers.get_list("WWW-Authenticate"))
    return any(
        challenge.scheme == "bearer" and challenge.params.get("error") == "invalid_token"
        for challenge in challenges
    )


class SekishoAuth(httpx.Auth):
    """httpx authentication: `Authorization: Bearer <token for downstream>` on every request.

    When the downstream answers 401 `invalid_token` (RFC 6750), the token is dropped from the
    client's cache and the request is sent once more with a freshly exchanged token: a cached
    token whose key or status was revoked is not served again until it expires. Unless the
    client keeps it (`forget` answers False: the downstream refused the token exchanged after
    its last refusal too, refusals.py): then the 401 is returned as it is, not sent again."""

    requires_request_body = True  # a retried request is sent again with its body

    def __init__(
        self,
        client: TokenExchangeClient | SyncTokenExchangeClient,
        downstream: Downstream,
        subject_token: Callable[[], str],
    ) -> None:
        self._client = client
        self._downstream = downstream
        self._subject_token = subject_token

    def _kwargs(self) -> dict[str, Any]:
        d = self._downstream
        return {
            "resources": d.resources,
            "scopes": d.scopes,
            "requested_token_type": d.requested_token_type,
        }

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        if not isinstance(self._client, SyncTokenExchangeClient):
            raise TypeError("a sync httpx.Client needs a SyncTokenExchangeClient")
        token = self._client.exchange(
            self._subject_token(), self._downstream.audience, **self._kwargs()
        )
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        if _token_refused(response) and self._client.forget(token):
            token = self._client.exchange(
                self._subject_token(), self._downstream.audience, **self._kwargs()
            )
            request.headers["Authorization"] = f"Bearer {token.access_token}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not isinstance(self._client, TokenExchangeClient):
            raise TypeError("an httpx.AsyncClient needs a TokenExchangeClient")
        token = await self._client.exchange(
            self._subject_token(), self._downstream.audience, **self._kwargs()
        )
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        if _token_refused(response) and self._client.forget(token):
            token = await self._client.exchange(
                self._subject_token(), self._downstream.audience, **self._kwargs()
            )
            request.headers["Authorization"] = f"Bearer {token.access_token}"
            yield request


class _TokenMetadata:
    """Replaces the call's authorization metadata with a token for the downstream, and forgets
    the token when the downstream answers UNAUTHENTICATED (gRPC's 401: the token itself was
    refused, its key or status revoked), as SekishoAuth does on `invalid_token`: otherwise
    every call carried the refused token until the cache's refresh-ahead window (red team
    session 16). Unlike SekishoAuth, the call is not sent again: the next call gets a fresh
    token."""

    def __init__(
        self,
        client: TokenExchangeClient,
        downstream: Downstream,
        subject_token: Callable[[], str],
    ) -> None:
        self._client = client
        self._downstream = downstream
        self._subject_token = subject_token
        self._watching: set[asyncio.Task[None]] = set()  # strong references until they end

    async def _token(self) -> ExchangedToken:
        d = self._downstream
        return await self._client.exchange(
            self._subject_token(),
            d.audience,
            resources=d.resources,
            scopes=d.scopes,
            requested_token_type=d.requested_token_type,
        )

    @staticmethod
    def _with_token(client_call_details: Any, token: ExchangedToken) -> Any:
        metadata = [(k, v) for k, v in (client_call_details.metadata or ()) if k != "authorization"]
        metadata.append(("authorization", f"Bearer {token.access_token}"))
        return client_call_details._replace(metadata=metadata)

    async def _forget_if_refused(self, call: Any, token: ExchangedToken) -> None:
        """Forget `token` when `call` (ended, or ending) was answered UNAUTHENTICATED."""
        if await call.code() == grpc.StatusCode.UNAUTHENTICATED:
            self._client.forget(token)

    def _watch(self, call: Any, token: ExchangedToken) -> None:
        """_forget_if_refused once `call` ends, without waiting for it (a stream is read by
        the caller after the interceptor returns)."""

        def ended(finished: Any) -> None:
            if finished.cancelled():
                return
            task = asyncio.get_running_loop().create_task(self._forget_if_refused(finished, token))
            self._watching.add(task)
            task.add_done_callback(self._watching.discard)

        call.add_done_callback(ended)


class SekishoTokenInterceptor(_TokenMetadata, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """gRPC aio interceptor: `authorization: Bearer <token>` on every unary call."""

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        token = await self._token()
        call = await continuation(self._with_token(client_call_details, token), request)
        # A unary call's answer is its end: read it here, so the token is forgotten before the
        # caller sees the refusal (the call itself, its metadata and status, is returned as is).
        try:
            await self._forget_if_refused(call, token)
        except asyncio.CancelledError:
            call.cancel()
            raise
        return call


class SekishoStreamTokenInterceptor(_TokenMetadata, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """The same for server-streaming calls (grpc.aio files each interceptor under one kind)."""

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        token = await self._token()
        call = await continuation(self._with_token(client_call_details, token), request)
        self._watch(call, token)
        return call


def sekisho_interceptors(
    client: TokenExchangeClient, downstream: Downstream, subject_token: Callable[[], str]
) -> list[Any]:
    """Both interceptors, for `grpc.aio.secure_channel(..., interceptors=...)`."""
    return [
        SekishoTokenInterceptor(client, downstream, subject_token),
        SekishoStreamTokenInterceptor(client, downstream, subject_token),
    ]
