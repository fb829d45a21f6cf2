"""sekisho.client against a real Sekisho: cache, single-flight, refresh-ahead, typed errors,
retries only for UNAVAILABLE, and the httpx / gRPC outbound helpers."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from aiohttp import web
from sekisho.client import (
    ChannelOptions,
    Downstream,
    ExchangeDeniedError,
    ExchangeUnavailableError,
    InvalidExchangeRequestError,
    RetryPolicy,
    SekishoAuth,
    StepUpRequiredError,
    SyncTokenExchangeClient,
    TokenExchangeClient,
    sekisho_interceptors,
)
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN

from examples.envoy.stack import serve
from tests.integration.conftest import LiveStack
from tests.loopback import free_port

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"
DOCS_MCP = "https://docs.example.com/mcp"
DOCS_SEARCH = "https://docs.example.com/search"
INSECURE = ChannelOptions(insecure=True)
# A call's deadline where it only ends a hang: the SDK's default (2 s, retries included) is a
# budget an agent's request has, and a fresh connection's first calls waited up to 3.7 s on a
# loaded host (bench/results/first_call.md), failing tests that check nothing about deadlines.
HANG_GUARD = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _target(live: LiveStack) -> str:
    return f"127.0.0.1:{live.service.grpc.port}"


@pytest.fixture
async def client(live: LiveStack) -> AsyncIterator[TokenExchangeClient]:
    async with TokenExchangeClient(
        _target(live), channel_options=INSECURE, timeout_seconds=HANG_GUARD
    ) as sekisho:
        yield sekisho


async def _access_token(sekisho: TokenExchangeClient, subject: str, **kwargs: Any) -> Any:
    kwargs.setdefault("resources", [CRM_MCP])
    return await sekisho.exchange(
        subject, CRM_AS, requested_token_type=TOKEN_TYPE_ACCESS_TOKEN, **kwargs
    )


async def test_identical_requests_hit_the_cache(
    live: LiveStack, client: TokenExchangeClient
) -> None:
    subject = live.user_token()
    first = await _access_token(client, subject, resources=[CRM_MCP], scopes=["crm.read"])
    second = await _access_token(client, subject, resources=[CRM_MCP], scopes=["crm.read"])
    assert second is first
    assert client.rpc_count == 1
    assert (client.cache.hits, client.cache.misses) == (1, 1)


async def test_key_ignores_order_but_not_subject_or_scopes(
    live: LiveStack, client: TokenExchangeClient
) -> None:
    alice, bob = live.user_token(), live.user_token(sub="bob")
    await client.exchange(
        alice,
        "https://docs-as.example.com",
        resources=[DOCS_MCP, DOCS_SEARCH],
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )
    await client.exchange(
        alice,
        "https://docs-as.example.com",
        resources=[DOCS_SEARCH, DOCS_MCP],
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )
    assert client.rpc_count == 1
    await client.exchange(
        bob,
        "https://docs-as.example.com",
        resources=[DOCS_MCP, DOCS_SEARCH],
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )
    await client.exchange(
        alice,
        "https://docs-as.example.com",
        resources=[DOCS_MCP, DOCS_SEARCH],
        scopes=["docs.read"],
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )
    assert client.rpc_count == 3


def _claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified (the server's own token, read for what it names)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def test_an_actor_token_is_sent_and_is_part_of_the_cache_key(
    live: LiveStack, client: TokenExchangeClient
) -> None:
    # An agent acting for a user sends its own token (RFC 8693 actor_token; the user's token
    # names it in may_act): the minted token's act.sub names the agent. A token minted with one
    # actor is never served for another actor, nor for none: the cache key holds the actor.
    subject = live.user_token(may_act={"sub": "mallory", "iss": live.idp.issuer})
    mallory, eve = live.user_token(sub="mallory"), live.user_token(sub="eve")
    acted = await _access_token(client, subject, actor_token=mallory)
    assert _claims(acted.access_token)["act"]["sub"] == "mallory"
    again = await _access_token(client, subject, actor_token=mallory)
    assert again is acted and client.rpc_count == 1
    with pytest.raises(ExchangeDeniedError):  # eve is not in may_act: asked, and refused
        await _access_token(client, subject, actor_token=eve)
    alone = await _access_token(client, subject)
    assert "act" not in _claims(alone.access_token)
    assert client.rpc_count == 3


async def test_concurrent_identical_requests_share_one_rpc(
    live: LiveStack, client: TokenExchangeClient
) -> None:
    subject = live.user_token()
    tokens = await asyncio.gather(*(_access_token(client, subject) for _ in range(25)))
    assert client.rpc_count == 1
    assert len({t.access_token for t in tokens}) == 1


async def test_id_jags_are_not_cached_by_default(
    live: LiveStack, client: TokenExchangeClient
) -> None:
    # A downstream refuses a second redemption of one jti, so each ID-JAG must be fresh.
    subject = live.user_token()
    first = await client.exchange(subject, CRM_AS)
    second = await client.exchange(subject, CRM_AS)
    assert first.jti != second.jti
    assert client.rpc_count == 2


async def test_refresh_ahead_serves_cached_then_swaps_in_a_new_token(live: LiveStack) -> None:
    clock = Clock()
    async with TokenExchangeClient(
        _target(live), channel_options=INSECURE, clock=clock, refresh_ahead_seconds=30,
        timeout_seconds=HANG_GUARD,
    ) as sekisho:  # fmt: skip
        subject = live.user_token()
        first = await _access_token(sekisho, subject)
        lifetime = first.expires_at - clock.now
        clock.now += lifetime - 10  # inside the refresh-ahead window, not yet expired
        during = await _access_token(sekisho, subject)
        assert during is first  # the caller does not wait
        # Until the background refresh is done, not a fixed 1 s (a refresh outlasting it on a
        # loaded host would leave `after` the cached first token).
        if sekisho._background:
            await asyncio.wait(set(sekisho._background), timeout=HANG_GUARD)
        after = await _access_token(sekisho, subject)
        assert sekisho.rpc_count == 2
        assert after.jti != first.jti


async def test_expired_entry_is_never_served(live: LiveStack) -> None:
    clock = Clock()
    async with TokenExchangeClient(
        _target(live), channel_options=INSECURE, clock=clock, timeout_seconds=HANG_GUARD
    ) as sekisho:
        subject = live.user_token()
        first = await _access_token(sekisho, subject)
        clock.now = first.expires_at
        second = await _access_token(sekisho, subject)
        assert second.jti != first.jti


async def test_policy_denial_is_typed_and_not_retried(
    live: LiveStack, client: TokenExchangeClient
) -> None:
    with pytest.raises(ExchangeDeniedError) as caught:
        await client.exchange(live.user_token(), "https://unknown-as.example.com")
    assert caught.value.reason == "access_denied"
    assert client.rpc_count == 1
    # What an operator looks the refusal up by (sekisho audit show), on the error and in its
    # text: a logged exception is what reaches them. They were only in `.metadata`.
    assert caught.value.request_id and caught.value.decision_id
    assert f"(request_id {caught.value.request_id})" in str(caught.value)
    assert caught.value.code == "PERMISSION_DENIED" and caught.value.retry_after is None


async def test_bad_subject_token_is_invalid_request(client: TokenExchangeClient) -> None:
    with pytest.raises(InvalidExchangeRequestError) as caught:
        await client.exchange("not-a-jwt", CRM_AS)
    assert caught.value.reason == "invalid_request"
    assert caught.value.request_id and caught.value.decision_id == ""  # policy was not asked


async def test_step_up_carries_acr_values(live: LiveStack, client: TokenExchangeClient) -> None:
    subject = live.user_token(groups=["platform-admins"])
    with pytest.raises(StepUpRequiredError) as caught:
        await client.exchange(subject, "https://github-mcp-as.example.com", scopes=["repo.admin"])
    assert caught.value.reason == "insufficient_user_authentication"
    assert "urn:example:acr:phishing-resistant" in caught.value.acr_values
    assert caught.value.max_age == 900


async def test_unavailable_is_retried_until_the_deadline() -> None:
    # Attempts enough for 100-200 s of backoff: only the 5 s deadline ends them within the
    # 30 s mark, which a loaded host's stalls never reach (a 1.5 s mark against 50 attempts'
    # 0.5-1 s did: the two were too close to tell apart on a slow machine). 5 s, not 0.5 s: a
    # stall of half a second after the first refused attempt would leave no time for a second.
    retry = RetryPolicy(max_attempts=10_000, base_seconds=0.01, max_backoff_seconds=0.02)
    async with TokenExchangeClient(
        f"127.0.0.1:{free_port()}", channel_options=INSECURE, retry=retry
    ) as sekisho:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ExchangeUnavailableError):
            await sekisho.exchange("t", CRM_AS, deadline_seconds=5)
        assert loop.time() - started < 30
        assert sekisho.rpc_count > 1


async def test_retries_stop_at_max_attempts() -> None:
    retry = RetryPolicy(max_attempts=3, base_seconds=0.001, max_backoff_seconds=0.001)
    async with TokenExchangeClient(
        f"127.0.0.1:{free_port()}", channel_options=INSECURE, retry=retry
    ) as sekisho:
        with pytest.raises(ExchangeUnavailableError):
            await sekisho.exchange("t", CRM_AS, deadline_seconds=5)
        assert sekisho.rpc_count == 3


async def test_sync_client_shares_the_cache(live: LiveStack) -> None:
    subject = live.user_token()

    def work() -> tuple[str, str, int]:
        with SyncTokenExchangeClient(
            _target(live), channel_options=INSECURE, timeout_seconds=HANG_GUARD
        ) as sekisho:
            kwargs: Any = {"resources": [CRM_MCP], "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN}
            a = sekisho.exchange(subject, CRM_AS, **kwargs)
            b = sekisho.exchange(subject, CRM_AS, **kwargs)
            return a.access_token, b.access_token, sekisho.cache.hits

    a, b, hits = await asyncio.to_thread(work)
    assert a == b
    assert hits == 1


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, list[str]]]:
    """An HTTP downstream that records the Authorization header of each request."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/api", handler)
    async with serve(app) as port:
        yield f"http://127.0.0.1:{port}/api", seen


async def test_httpx_auth_attaches_a_cached_token(
    live: LiveStack, client: TokenExchangeClient, echo_server: tuple[str, list[str]]
) -> None:
    url, seen = echo_server
    subject = live.user_token()
    auth = SekishoAuth(client, Downstream(audience=CRM_AS, resources=(CRM_MCP,)), lambda: subject)
    async with httpx.AsyncClient(auth=auth) as http:
        for _ in range(3):
            assert (await http.get(url)).status_code == 200
    assert len(set(seen)) == 1 and seen[0].startswith("Bearer ey")
    assert client.rpc_count == 1


async def test_httpx_auth_sync(live: LiveStack, echo_server: tuple[str, list[str]]) -> None:
    url, seen = echo_server
    subject = live.user_token()

    def work() -> None:
        with SyncTokenExchangeClient(
            _target(live), channel_options=INSECURE, timeout_seconds=HANG_GUARD
        ) as sekisho:
            auth = SekishoAuth(
                sekisho, Downstream(audience=CRM_AS, resources=(CRM_MCP,)), lambda: subject
            )
            with httpx.Client(auth=auth) as http:
                http.get(url)

    await asyncio.to_thread(work)
    assert seen[0].startswith("Bearer ey")


@pytest.fixture
async def refusing_server() -> AsyncIterator[tuple[str, list[str]]]:
    """A downstream that refuses the first bearer token it sees (401 invalid_token, as one whose
    key or status was revoked) and accepts any other; `/scope` refuses with insufficient_scope."""
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        seen.append(authorization)
        if request.path == "/scope":
            challenge = 'Bearer error="insufficient_scope"'
            return web.json_response({}, status=401, headers={"WWW-Authenticate": challenge})
        if authorization == seen[0]:
            challenge = 'Bearer error="invalid_token", error_description="key revoked"'
            return web.json_response({}, status=401, headers={"WWW-Authenticate": challenge})
        return web.json_response({"ok": True, "body": (await request.text())})

    app = web.Application()
    app.router.add_post("/api", handler)
    app.router.add_post("/scope", handler)
    async with serve(app) as port:
        yield f"http://127.0.0.1:{port}", seen


async def test_httpx_auth_drops_a_refused_token_and_retries_once(
    live: LiveStack, client: TokenExchangeClient, refusing_server: tuple[str, list[str]]
) -> None:
    # A cached token the downstream no longer accepts (its key revoked) must not be served
    # again until it expires: forgotten, exchanged afresh, the request sent once more.
    base, seen = refusing_server
    subject = live.user_token()
    auth = SekishoAuth(client, Downstream(audience=CRM_AS, resources=(CRM_MCP,)), lambda: subject)
    async with httpx.AsyncClient(auth=auth) as http:
        response = await http.post(f"{base}/api", content=b'{"jsonrpc": "2.0"}')
        assert response.status_code == 200 and response.json()["body"] == '{"jsonrpc": "2.0"}'
        assert (await http.post(f"{base}/api")).status_code == 200  # the new token, cached
        assert client.rpc_count == 2
        assert len(seen) == 3 and seen[0] != seen[1] == seen[2]
        # Other refusals are the caller's to handle: no retry, nothing forgotten.
        assert (await http.post(f"{base}/scope")).status_code == 401
    assert client.rpc_count == 2


async def test_forget_drops_only_that_token(live: LiveStack, client: TokenExchangeClient) -> None:
    subject = live.user_token()
    crm = await _access_token(client, subject, resources=[CRM_MCP])
    docs = await client.exchange(
        subject, "https://docs-as.example.com", resources=[DOCS_MCP],
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )  # fmt: skip
    assert client.forget(crm) is True and client.forget(crm.access_token) is False
    again = await client.exchange(
        subject, "https://docs-as.example.com", resources=[DOCS_MCP],
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )  # fmt: skip
    assert again is docs
    assert (await _access_token(client, subject, resources=[CRM_MCP])) != crm
    assert client.rpc_count == 3


async def test_httpx_auth_sync_retries_a_refused_token(
    live: LiveStack, refusing_server: tuple[str, list[str]]
) -> None:
    base, seen = refusing_server
    subject = live.user_token()

    def work() -> int:
        with SyncTokenExchangeClient(
            _target(live), channel_options=INSECURE, timeout_seconds=HANG_GUARD
        ) as sekisho:
            auth = SekishoAuth(
                sekisho, Downstream(audience=CRM_AS, resources=(CRM_MCP,)), lambda: subject
            )
            with httpx.Client(auth=auth) as http:
                return http.post(f"{base}/api").status_code

    assert await asyncio.to_thread(work) == 200
    assert len(seen) == 2 and seen[0] != seen[1]


async def test_grpc_interceptor_sends_bearer_metadata(
    live: LiveStack, client: TokenExchangeClient
) -> None:
    seen: list[dict[str, str]] = []

    def echo(request: bytes, context: grpc.ServicerContext) -> bytes:
        seen.append(dict(context.invocation_metadata()))
        return request

    def echo_stream(request: bytes, context: grpc.ServicerContext) -> Any:
        seen.append(dict(context.invocation_metadata()))
        yield request
        yield request

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "demo.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(echo),
            "Repeat": grpc.unary_stream_rpc_method_handler(echo_stream),
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    subject = live.user_token()
    interceptors = sekisho_interceptors(
        client, Downstream(audience=CRM_AS, resources=(CRM_MCP,)), lambda: subject
    )
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=interceptors
        ) as channel:
            say = channel.unary_unary("/demo.Echo/Say")
            assert await say(b"hi") == b"hi"
            await say(b"again", metadata=[("authorization", "Bearer user-token")])
            repeat = channel.unary_stream("/demo.Echo/Repeat")
            assert [chunk async for chunk in repeat(b"x")] == [b"x", b"x"]
    finally:
        await server.stop(0)
    tokens = {m["authorization"] for m in seen}
    assert len(seen) == 3  # two unary calls and one server-streaming call
    assert len(tokens) == 1 and next(iter(tokens)).startswith("Bearer ey")  # never the user's
    assert client.rpc_count == 1
