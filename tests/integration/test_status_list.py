"""[status_list] end to end in one process: minted tokens of both profiles carry the `status`
claim, the list they point at is served signed with the service's keys and the draft's HTTP
caching, the RFC 8414 metadata advertises it, and a revocation in the store refuses new exchanges
and flips the token's bit."""

import asyncio
import base64
import json
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.client import ChannelOptions, ExchangeError, TokenExchangeClient
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.devidp import DevIdentityProvider
from sekisho.http.statuslist import MAX_MEDIA_RANGES
from sekisho.service import start_service
from sekisho.signing.filestore import FileKeyStore
from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import Revocation, subject_key
from sekisho.verify import JwksClient, StatusListClient

from tests.integration.conftest import SEKISHO_ISSUER, LiveStack, stack_settings
from tests.loopback import free_port
from tests.status_records import recorded_tokens
from tests.workers_pod import within

pytestmark = pytest.mark.integration

CRM_AS = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"
DOCS_AS = "https://docs-as.example.com"
TTL = 7
HANG_GUARD_SECONDS = 30  # a bound on waiting for the service, not an assertion about time


@pytest.fixture
async def status_live(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[LiveStack]:
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer,
        keys_dir,
        status_list={
            "enabled": True,
            "path": str(tmp_path / "status" / "status.db"),
            "ttl_seconds": TTL,
            "poll_seconds": 0.2,
            "flush_interval_seconds": 0.05,
        },
    )
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    stub = pb_grpc.TokenExchangeServiceStub(channel)
    yield LiveStack(service=service, idp=dev_idp, stub=stub, channel=channel, settings=settings)
    await channel.close()
    await service.stop(0.5)


async def _get(live: LiveStack, path: str, accept: str = "") -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(live.http_base + path, headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def _keys(live: LiveStack) -> KeySet:
    _, _, body = await _get(live, "/.well-known/jwks.json")
    return KeySet.import_key_set(json.loads(body))


def _path(live: LiveStack, uri: str) -> str:
    issuer = live.settings.server.issuer
    assert uri.startswith(issuer + "/statuslists/")
    return uri[len(issuer) :]


async def _status_of(live: LiveStack, reference: dict[str, object]) -> int:
    status, _, body = await _get(live, _path(live, str(reference["uri"])))
    assert status == 200
    claims = jose_jwt.decode(body.decode(), await _keys(live)).claims
    lst = claims["status_list"]["lst"]
    array = zlib.decompress(base64.urlsafe_b64decode(lst + "=" * (-len(lst) % 4)))
    bits, idx = int(claims["status_list"]["bits"]), int(str(reference["idx"]))
    position = idx * bits  # draft §4.1: entry idx starts at bit idx * bits, least significant first
    return (array[position // 8] >> (position % 8)) & ((1 << bits) - 1)


async def _exchange(live: LiveStack, sub: str = "alice", **fields: object) -> dict[str, object]:
    fields.setdefault("audience", CRM_AS)
    request = pb.ExchangeTokenRequest(subject_token=live.user_token(sub=sub), **fields)
    response = await live.stub.ExchangeToken(request)
    claims = jose_jwt.decode(response.access_token, await _keys(live)).claims
    return dict(claims)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({}, id="id-jag"),
        pytest.param(
            {"resource": [CRM_MCP], "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN},
            id="access_token",
        ),
    ],
)
async def test_minted_tokens_carry_a_status_reference(
    status_live: LiveStack, fields: dict[str, object]
) -> None:
    first = await _exchange(status_live, **fields)
    second = await _exchange(status_live, **fields)
    one, two = first["status"]["status_list"], second["status"]["status_list"]  # type: ignore[index]
    assert set(one) == {"idx", "uri"} and isinstance(one["idx"], int)
    assert (one["uri"], one["idx"]) != (two["uri"], two["idx"])


async def test_the_served_list_is_a_signed_status_list_token(status_live: LiveStack) -> None:
    reference = (await _exchange(status_live))["status"]["status_list"]  # type: ignore[index]
    status, headers, body = await _get(
        status_live, _path(status_live, reference["uri"]), accept="application/statuslist+jwt"
    )
    assert status == 200
    assert headers["Content-Type"] == "application/statuslist+jwt"
    assert headers["Cache-Control"] == f"public, max-age={TTL}"
    decoded = jose_jwt.decode(body.decode(), await _keys(status_live))
    assert decoded.header["typ"] == "statuslist+jwt"
    claims = decoded.claims
    assert claims["sub"] == reference["uri"]
    assert claims["ttl"] == TTL and claims["exp"] > claims["iat"]
    assert claims["status_list"]["bits"] == 2  # room for SUSPENDED
    assert claims["status_list"]["aggregation_uri"] == SEKISHO_ISSUER + "/statuslists"
    assert await _status_of(status_live, reference) == 0


async def test_metadata_and_aggregation_name_the_lists(status_live: LiveStack) -> None:
    reference = (await _exchange(status_live))["status"]["status_list"]  # type: ignore[index]
    _, _, body = await _get(status_live, "/.well-known/oauth-authorization-server")
    endpoint = json.loads(body)["status_list_aggregation_endpoint"]
    assert endpoint == SEKISHO_ISSUER + "/statuslists"
    status, _, body = await _get(status_live, "/statuslists")
    assert status == 200 and reference["uri"] in json.loads(body)["status_lists"]


def _ranges(count: int, last: str = "application/json") -> str:
    """An Accept header of `count` media ranges, `last` the last one and the others refused."""
    return ", ".join(["application/json"] * (count - 1) + [last])


@pytest.mark.parametrize(
    ("path", "accept", "expected"),
    [
        pytest.param("/statuslists/999", "", 404, id="unknown-list"),
        pytest.param("/statuslists/abc", "", 404, id="not-a-number"),
        pytest.param("/statuslists/1", "application/json", 406, id="wrong-accept"),
        pytest.param(
            "/statuslists/1", _ranges(MAX_MEDIA_RANGES, "*/*"), 200, id="accept-within-bound"
        ),
        # The last range the bound reads still refuses (the bound is not one short).
        pytest.param("/statuslists/1", _ranges(MAX_MEDIA_RANGES), 406, id="accept-at-bound-read"),
        # Red team session 14: 4,000 ranges were each read (~0.4 ms of the event loop); past
        # MAX_MEDIA_RANGES the header is disregarded (RFC 9110 §12.5.1), read no further.
        pytest.param("/statuslists/1", _ranges(MAX_MEDIA_RANGES + 1), 200, id="accept-past-bound"),
        pytest.param("/statuslists/1", "a," * 4000, 200, id="accept-past-bound-disregarded"),
    ],
)
async def test_bad_list_requests(
    status_live: LiveStack, path: str, accept: str, expected: int
) -> None:
    await _exchange(status_live)  # list 1 exists
    status, _, _ = await _get(status_live, path, accept)
    assert status == expected


async def test_a_list_not_leased_yet_is_never_stored_as_missing(status_live: LiveStack) -> None:
    """List ids are sequential, so anyone can ask for the next one before it is leased. A 404
    with no Cache-Control is heuristically cacheable (RFC 9111 §4.2.2; CDNs keep 404s for
    seconds to an hour by default): through the cache the docs expect in front of the list URL,
    the downstreams of every token minted into that list would get the stored 404 and could not
    check them (VerifierUnavailableError) for as long as it held it (red team session 15)."""
    reference = (await _exchange(status_live))["status"]["status_list"]  # type: ignore[index]
    next_list = int(reference["uri"].rsplit("/", 1)[1]) + 1
    status, headers, _ = await _get(status_live, f"/statuslists/{next_list}")
    assert status == 404
    assert headers.get("Cache-Control") == "no-store"


async def test_a_revoked_subject_is_refused_and_its_token_flips(
    status_live: LiveStack, tmp_path: Path
) -> None:
    alice = (await _exchange(status_live, sub="alice"))["status"]["status_list"]  # type: ignore[index]
    bob = (await _exchange(status_live, sub="bob"))["status"]["status_list"]  # type: ignore[index]
    db, issuer = tmp_path / "status" / "status.db", status_live.idp.issuer

    async def alice_recorded() -> bool:  # the worker flushes its records every 0.05 s
        return recorded_tokens(db, issuer, "alice") == 1

    await within(alice_recorded, HANG_GUARD_SECONDS)
    store = FileStatusStore(db)
    revocation = Revocation("subject", subject_key(issuer, "alice"), "laptop stolen", "sec", 1)
    assert store.revoke(int(time.time()), revocation) == 1  # the recorded token is marked
    refused = await _until_refused(lambda: _exchange(status_live, sub="alice"))  # poll 0.2 s
    assert refused == grpc.StatusCode.PERMISSION_DENIED
    await _exchange(status_live, sub="bob")
    await _until_status(status_live, alice, 1)  # a signed list is reused for 1 s
    assert await _status_of(status_live, bob) == 0


async def _until_status(live: LiveStack, reference: dict[str, object], expected: int) -> None:
    """Poll the served list until the token's entry reads `expected` (the worker's record
    flush, the gate's poll and the 1 s list reuse); fails after the hang guard."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while (status := await _status_of(live, reference)) != expected:
        assert time.monotonic() < deadline, f"entry still {status}"
        await asyncio.sleep(0.1)


async def _until_refused(exchange: Callable[[], Awaitable[object]]) -> grpc.StatusCode:
    """Retry `exchange` until it is refused (the gate's poll, 0.2 s) and return the refusal's
    code; fails after the hang guard."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while True:
        try:
            await exchange()
        except grpc.aio.AioRpcError as error:
            return error.code()
        assert time.monotonic() < deadline, "still exchanged"
        await asyncio.sleep(0.1)


async def test_one_revoke_flips_the_tokens_a_user_acted_in_and_a_resource_was_granted(
    status_live: LiveStack, tmp_path: Path
) -> None:
    # Session 11: `revoke subject` of the actor and `revoke audience` of a resource (an access
    # token's `aud`, requested or granted by policy unasked) mark the live tokens, not only
    # refuse new exchanges. No wait for the worker's record flush: a record written after the
    # revocation is marked then.
    issuer = status_live.idp.issuer
    access = {"resource": [CRM_MCP], "requested_token_type": TOKEN_TYPE_ACCESS_TOKEN}
    request = pb.ExchangeTokenRequest(
        subject_token=status_live.user_token(may_act={"sub": "mallory", "iss": issuer}),
        actor_token=status_live.user_token(sub="mallory"),
        actor_token_type=TOKEN_TYPE_ID_TOKEN,
        audience=CRM_AS,
    )
    response = await status_live.stub.ExchangeToken(request)
    acted = jose_jwt.decode(response.access_token, await _keys(status_live)).claims
    assert acted["sub"] == "alice" and acted["act"]["sub"] == "mallory"
    for_resource = await _exchange(status_live, sub="bob", **access)
    assert for_resource["aud"] == CRM_MCP
    unasked = await _exchange(status_live, sub="carol")  # no resource requested: CRM_MCP granted
    assert unasked["resource"] == CRM_MCP
    elsewhere = await _exchange(status_live, sub="dave", audience=DOCS_AS)  # names neither
    store = FileStatusStore(tmp_path / "status" / "status.db")
    now = int(time.time())
    store.revoke(now, Revocation("subject", subject_key(issuer, "mallory"), "INC", "sec", now))
    store.revoke(now, Revocation("audience", CRM_MCP, "INC", "sec", now))
    store.close()
    for marked in (acted, for_resource, unasked):
        await _until_status(status_live, marked["status"]["status_list"], 1)  # type: ignore[index]
    assert await _status_of(status_live, elsewhere["status"]["status_list"]) == 0  # type: ignore[index]
    # The gate agrees with the marks: what they cover is refused, never minted born revoked.
    # The marks can be served before the gate's next poll (a list not fetched since is signed
    # afresh), so the refusal is waited for.
    refused = await _until_refused(lambda: _exchange(status_live, sub="carol"))
    assert refused == grpc.StatusCode.PERMISSION_DENIED
    await _exchange(status_live, sub="dave", audience=DOCS_AS)


async def test_a_revoked_agent_nested_in_the_subject_tokens_act_flips_and_is_refused(
    status_live: LiveStack, tmp_path: Path
) -> None:
    # Session 11: the gate checked the direct actor token only. A subject token that is itself
    # the result of a delegation (act: agent-x, then agent-y) kept working after
    # `revoke caller agent-x`, and its new token nested agent-x again; the live tokens nesting
    # it were not marked either.
    chain = {"sub": "agent-x", "act": {"sub": "agent-y", "iss": status_live.idp.issuer}}
    delegated = pb.ExchangeTokenRequest(
        subject_token=status_live.user_token(act=chain), audience=CRM_AS
    )
    response = await status_live.stub.ExchangeToken(delegated)
    minted = jose_jwt.decode(response.access_token, await _keys(status_live)).claims
    # nested again, the level without `iss` naming its token's issuer (session 12)
    assert minted["act"] == {**chain, "iss": status_live.idp.issuer}
    plain = await _exchange(status_live, sub="alice")
    store = FileStatusStore(tmp_path / "status" / "status.db")
    now = int(time.time())
    store.revoke(now, Revocation("caller", "agent-x", "INC", "sec", now))
    store.close()
    await _until_status(status_live, minted["status"]["status_list"], 1)
    refused = await _until_refused(lambda: status_live.stub.ExchangeToken(delegated))
    assert refused == grpc.StatusCode.PERMISSION_DENIED
    assert await _status_of(status_live, plain["status"]["status_list"]) == 0  # type: ignore[index]
    await _exchange(status_live, sub="alice")  # alice's own token: served


@pytest.fixture
async def addressable(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[LiveStack]:
    """A stack whose issuer is its own HTTP address, so status URIs can be fetched."""
    port = free_port()
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer,
        keys_dir,
        server={"http_listen": f"127.0.0.1:{port}", "issuer": f"http://127.0.0.1:{port}"},
        status_list={
            "enabled": True,
            "path": str(tmp_path / "status" / "status.db"),
            "ttl_seconds": TTL,
            "poll_seconds": 0.2,
            "flush_interval_seconds": 0.05,
        },
    )
    service = await start_service(settings)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.grpc.port}")
    stub = pb_grpc.TokenExchangeServiceStub(channel)
    yield LiveStack(service=service, idp=dev_idp, stub=stub, channel=channel, settings=settings)
    await channel.close()
    await service.stop(0.5)


async def test_the_client_sdk_drops_a_cached_token_once_revoked(
    addressable: LiveStack, tmp_path: Path
) -> None:
    issuer = addressable.settings.server.issuer
    now = [time.time()]
    keys = JwksClient(issuer + "/.well-known/jwks.json", clock=time.time)
    status = StatusListClient(issuer=issuer, keys=keys, clock=lambda: now[0])
    subject = addressable.user_token(sub="alice")
    async with TokenExchangeClient(
        f"127.0.0.1:{addressable.service.grpc.port}",
        channel_options=ChannelOptions(insecure=True),
        status=status,
        # A hang guard: with the SDK's 2 s default a list fetch on the request path that a
        # loaded host slowed past the call's deadline would serve the cached token as unknown.
        timeout_seconds=30,
    ) as client:
        first = await client.exchange(
            subject, CRM_AS, resources=[CRM_MCP], requested_token_type=TOKEN_TYPE_ACCESS_TOKEN
        )
        again = await client.exchange(
            subject, CRM_AS, resources=[CRM_MCP], requested_token_type=TOKEN_TYPE_ACCESS_TOKEN
        )
        assert again.jti == first.jti and client.rpc_count == 1  # served from the cache
        store = FileStatusStore(tmp_path / "status" / "status.db")
        key = subject_key(addressable.idp.issuer, "alice")
        store.revoke(int(time.time()), Revocation("subject", key, "stolen", "sec", 1))
        # The served list marks the cached token (flushed before or after the revocation: a
        # record covered by one is marked), and the gate refuses alice (its poll).
        await _until_status(addressable, first.status["status_list"], 1)  # type: ignore[index]
        direct = pb.ExchangeTokenRequest(subject_token=subject, audience=CRM_AS)
        refused = await _until_refused(lambda: addressable.stub.ExchangeToken(direct))
        assert refused == grpc.StatusCode.PERMISSION_DENIED
        now[0] += TTL + 1  # the client's copy of the list is past its ttl
        with pytest.raises(ExchangeError) as refused:
            await client.exchange(
                subject, CRM_AS, resources=[CRM_MCP], requested_token_type=TOKEN_TYPE_ACCESS_TOKEN
            )
        assert refused.value.reason == "access_denied" and client.rpc_count == 2


async def test_no_listener_takes_a_call_before_the_revocations_are_loaded(
    tmp_path: Path, dev_idp: DevIdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the gate has its first view every exchange fails closed (UNAVAILABLE, "token status
    is unavailable"); with several workers the kernel hands a connection to a worker as soon as
    it listens, whatever another worker's /readyz said. Seen in bench/status_list.py: a worker's
    first exchange refused. The view must be loaded before the gRPC and HTTP listeners bind."""
    from sekisho import service as service_module

    unloaded_at_bind: list[bool] = []
    bind = service_module.serve_grpc  # the first listener _serve binds (HTTP follows it)

    async def checked(core: Any, *args: Any) -> Any:
        unloaded_at_bind.append(core.status.gate._loaded_at is None)  # status/revocations.py
        return await bind(core, *args)

    monkeypatch.setattr(service_module, "serve_grpc", checked)
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer,
        keys_dir,
        status_list={"enabled": True, "path": str(tmp_path / "status" / "status.db")},
    )
    service = await start_service(settings)
    await service.stop(0.5)
    assert unloaded_at_bind == [False]
