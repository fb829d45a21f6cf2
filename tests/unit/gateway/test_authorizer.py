"""GatewayAuthorizer over the real pipeline (harness: real verifier, embedded OPA-Wasm policy, file keys)."""

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.errors import DeadlineExceededError
from sekisho.exchange import ExchangeCall, TokenExchanger
from sekisho.gateway.authorizer import (
    Allowed,
    Denied,
    GatewayAuthorizer,
    GatewayRequest,
    TokenHeader,
)
from sekisho.gateway.cache import GatewayTokenCache
from sekisho.gateway.routes import Route, RouteTable
from sekisho.models import Caller, ExchangeRequest, ExchangeResult
from sekisho.signing.audit import Actor, KeyAuditLog
from sekisho.signing.lifecycle import Timing
from sekisho.signing.manager import KeyManager
from sekisho.validation import build_request

from tests.bounds import request_limits
from tests.harness import (
    CRM_AUDIENCE,
    CRM_RESOURCE,
    DOCS_AUDIENCE,
    IDP_A,
    SEKISHO_ISSUER,
    Harness,
)

HR_ASSISTANT = "spiffe://example.org/agents/hr-assistant"


class RecordingExchanger:
    """Passes through to the real exchanger and records every request it saw."""

    def __init__(self, inner: TokenExchanger) -> None:
        self.inner = inner
        self.requests: list[ExchangeRequest] = []
        self.options: list[dict[str, Any]] = []  # time_budget and flow of each call

    async def handle(self, call: ExchangeCall, **kwargs: Any) -> ExchangeResult:
        # The gateway's call is idempotent: read it once here to record what the pipeline gets.
        self.requests.append(
            build_request(await call.params(), await call.caller(), request_limits())
        )
        self.options.append(kwargs)
        return await self.inner.handle(call, **kwargs)


def _route(index: int, prefix: str, audience: str, resource: str, scopes: tuple[str, ...]) -> Route:
    return Route(
        index=index,
        host="mcp.example.com",
        path_prefix=prefix,
        methods=(),
        audience=audience,
        resources=(resource,),
        scopes=scopes,
        requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
    )


ROUTES = RouteTable(
    [
        _route(0, "/crm", CRM_AUDIENCE, CRM_RESOURCE, ("crm.read",)),
        _route(1, "/crm/write", CRM_AUDIENCE, CRM_RESOURCE, ("crm.write",)),
        _route(
            2,
            "/mail",
            "https://mail-as.example.com",
            "https://mail.example.com/mcp",
            ("mail.read",),
        ),
        _route(
            3,
            "/github",
            "https://github-mcp-as.example.com",
            "https://github-mcp.example.com/mcp",
            ("repo.write",),
        ),
        _route(
            4,
            "/payroll",
            "https://payroll-as.example.com",
            "https://payroll.example.com/api",
            ("payroll.read",),
        ),
        Route(
            index=5,
            host="mcp.example.com",
            path_prefix="/jag",
            methods=(),
            audience=CRM_AUDIENCE,
            resources=(CRM_RESOURCE,),
            scopes=("crm.read",),
            requested_token_type=TOKEN_TYPE_ID_JAG,
        ),
    ]
)


def build(
    harness: Harness, header: TokenHeader | None = None, *, subject_verifier: bool = False
) -> tuple[GatewayAuthorizer, RecordingExchanger]:
    """`subject_verifier`: a cache hit asks the harness's verifier again, as in the service."""
    recorder = RecordingExchanger(harness.exchanger)
    cache = GatewayTokenCache(harness.clock, max_entries=100, margin_seconds=30)
    authorizer = GatewayAuthorizer(
        recorder,  # type: ignore[arg-type]
        ROUTES,
        cache,
        token_header=header or TokenHeader(),
        tool_header="x-mcp-tool",
        subject_verifier=harness.verifier if subject_verifier else None,
    )
    return authorizer, recorder


def gw(path: str, headers: Mapping[str, str], caller: Caller | None = None) -> GatewayRequest:
    return GatewayRequest(
        authority="mcp.example.com",
        path=path,
        method="post",
        headers=dict(headers),
        caller=caller or Caller(),
    )


def bearer(harness: Harness, **claims: Any) -> dict[str, str]:
    """An IdP access token (it names the agent app it was issued to, as access tokens do)."""
    claims.setdefault("client_id", "agent-app")
    return {"authorization": f"Bearer {harness.idp_a.token(harness.clock.now(), **claims)}"}


def minted_claims(harness: Harness, verdict: Allowed, audience: str) -> dict[str, Any]:
    scheme, _, token = verdict.headers_to_set["authorization"].partition(" ")
    assert scheme == "Bearer"
    _, signer = harness.keyring.signing_key()
    return dict(
        jwt.decode(
            token,
            signer.public_key,
            algorithms=["ES256"],
            audience=audience,
            options={"verify_exp": False, "verify_iat": False},
        )
    )


async def test_allowed_replaces_authorization_with_minted_access_token(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    headers = bearer(harness)
    verdict = await authorizer.authorize(gw("/crm/tools?k=v", {**headers, "x-mcp-tool": "find"}))
    assert isinstance(verdict, Allowed)
    assert verdict.headers_to_remove == ()
    assert headers["authorization"] not in verdict.headers_to_set.values()
    claims = minted_claims(harness, verdict, CRM_RESOURCE)
    assert claims["iss"] == SEKISHO_ISSUER
    assert claims["sub"] == "alice"
    assert claims["scope"] == "crm.read"
    token = verdict.headers_to_set["authorization"].split()[1]
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    (request,) = recorder.requests
    assert request.context == {
        "gateway": "ext_authz",
        "method": "POST",
        "path": "/crm/tools",
        "host": "mcp.example.com",
        "tool": "find",
    }


async def test_id_jag_profile_route(harness: Harness) -> None:
    authorizer, _ = build(harness)
    verdict = await authorizer.authorize(gw("/jag", bearer(harness)))
    assert isinstance(verdict, Allowed)
    token = verdict.headers_to_set["authorization"].split()[1]
    assert jwt.get_unverified_header(token)["typ"] == "oauth-id-jag+jwt"
    assert minted_claims(harness, verdict, CRM_AUDIENCE)["aud"] == CRM_AUDIENCE


async def test_custom_header_is_removed_from_upstream_request(harness: Harness) -> None:
    authorizer, _ = build(harness, TokenHeader(name="x-user-token", scheme=""))
    user_token = harness.idp_a.token(harness.clock.now(), client_id="agent-app")
    verdict = await authorizer.authorize(gw("/crm", {"x-user-token": user_token}))
    assert isinstance(verdict, Allowed)
    assert verdict.headers_to_remove == ("x-user-token",)
    assert minted_claims(harness, verdict, CRM_RESOURCE)["sub"] == "alice"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"authorization": "Basic YWxpY2U6cHc="}, id="other-scheme"),
        pytest.param({"authorization": "Bearer "}, id="empty-token"),
    ],
)
async def test_missing_token_is_401_without_exchange(
    harness: Harness, headers: dict[str, str]
) -> None:
    authorizer, recorder = build(harness)
    verdict = await authorizer.authorize(gw("/crm", headers))
    assert verdict == Denied(401, {"www-authenticate": 'Bearer realm="sekisho"'}, "token required")
    assert recorder.requests == []


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"exp": 1_000}, id="expired"),
        pytest.param({"aud": "someone-else"}, id="wrong-audience"),
        pytest.param({"iss": "https://evil.example.com"}, id="untrusted-issuer"),
    ],
)
async def test_bad_token_is_401_invalid_token(harness: Harness, claims: dict[str, Any]) -> None:
    authorizer, _ = build(harness)
    verdict = await authorizer.authorize(gw("/crm", bearer(harness, **claims)))
    assert isinstance(verdict, Denied)
    assert verdict.status == 401
    assert verdict.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_no_route_is_403_without_policy(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    verdict = await authorizer.authorize(gw("/unknown", bearer(harness)))
    assert isinstance(verdict, Denied)
    assert verdict.status == 403
    assert recorder.requests == []


async def test_scope_not_granted_is_403_insufficient_scope(harness: Harness) -> None:
    authorizer, _ = build(harness)
    verdict = await authorizer.authorize(gw("/crm/write", bearer(harness)))
    assert isinstance(verdict, Denied)
    assert verdict.status == 403
    challenge = verdict.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert 'scope="crm.write"' in challenge


async def test_consent_denial_carries_authorization_url(harness: Harness) -> None:
    authorizer, _ = build(harness)
    verdict = await authorizer.authorize(gw("/mail", bearer(harness, groups=["staff"])))
    assert isinstance(verdict, Denied)
    assert verdict.status == 403
    assert verdict.body == "consent_required"
    assert (
        'authorization_url="https://consent.example.com/authorize?'
        in (verdict.headers["www-authenticate"])
    )


async def test_step_up_denial_carries_acr_and_max_age(harness: Harness) -> None:
    authorizer, _ = build(harness)
    stale = int(harness.clock.now()) - 7200
    headers = bearer(harness, groups=["maintainers"], auth_time=stale)
    verdict = await authorizer.authorize(gw("/github", headers))
    assert isinstance(verdict, Denied)
    assert verdict.status == 403
    assert verdict.body == "insufficient_user_authentication"
    assert 'max_age="3600"' in verdict.headers["www-authenticate"]


async def test_caller_spiffe_id_reaches_policy(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    headers = bearer(harness, groups=["hr"], acr="urn:example:acr:mfa")
    denied = await authorizer.authorize(gw("/payroll", headers))
    assert isinstance(denied, Denied)
    assert denied.status == 403
    allowed = await authorizer.authorize(
        gw("/payroll", headers, Caller(HR_ASSISTANT, HR_ASSISTANT))
    )
    assert isinstance(allowed, Allowed)
    assert recorder.requests[-1].caller.spiffe_id == HR_ASSISTANT
    claims = minted_claims(harness, allowed, "https://payroll.example.com/api")
    assert claims["client_id"] == "hr-assistant"


async def test_idp_down_is_503(harness: Harness) -> None:
    harness.fetcher.failing = True
    authorizer, _ = build(harness)
    verdict = await authorizer.authorize(gw("/crm", bearer(harness)))
    assert isinstance(verdict, Denied)
    assert verdict.status == 503


async def test_cache_reuses_token_per_user_route_and_context(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    headers = bearer(harness)
    first = await authorizer.authorize(gw("/crm", headers))
    again = await authorizer.authorize(gw("/crm", headers))
    assert isinstance(first, Allowed)
    assert first == again
    assert len(recorder.requests) == 1
    await authorizer.authorize(gw("/crm", {**headers, "x-mcp-tool": "other"}))
    await authorizer.authorize(gw("/crm", bearer(harness, sub="bob")))
    assert len(recorder.requests) == 3
    harness.clock.advance(300 - 30)  # minted lifetime 300 s minus the 30 s margin
    await authorizer.authorize(gw("/crm", headers))
    assert len(recorder.requests) == 4


async def test_concurrent_misses_share_one_exchange(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    headers = bearer(harness)
    verdicts = await asyncio.gather(*(authorizer.authorize(gw("/crm", headers)) for _ in range(5)))
    assert len(recorder.requests) == 1
    assert all(v == verdicts[0] for v in verdicts)
    assert isinstance(verdicts[0], Allowed)


async def test_concurrent_denials_share_one_exchange_and_all_deny(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    headers = bearer(harness)
    verdicts = await asyncio.gather(
        *(authorizer.authorize(gw("/crm/write", headers)) for _ in range(3))
    )
    assert len(recorder.requests) == 1
    assert [v.status for v in verdicts if isinstance(v, Denied)] == [403, 403, 403]


async def test_denials_are_not_cached(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    headers = bearer(harness)
    for _ in range(2):
        assert isinstance(await authorizer.authorize(gw("/crm/write", headers)), Denied)
    assert len(recorder.requests) == 2


# --- the route Envoy chose (issue 15 item 3) ----------------------------------------------------

NAMED = RouteTable(
    [
        Route(
            index=0, host="", path_prefix="/", methods=(), audience=CRM_AUDIENCE,
            resources=(CRM_RESOURCE,), scopes=("crm.read",),
            requested_token_type=TOKEN_TYPE_ACCESS_TOKEN, name="crm",
        ),
        Route(
            index=1, host="", path_prefix="/docs", methods=(), audience=DOCS_AUDIENCE,
            resources=(), scopes=("docs.read",),
            requested_token_type=TOKEN_TYPE_ACCESS_TOKEN, name="docs",
        ),
    ]
)  # fmt: skip


def _named(
    harness: Harness, *, route_from_envoy: bool
) -> tuple[GatewayAuthorizer, RecordingExchanger]:
    recorder = RecordingExchanger(harness.exchanger)
    authorizer = GatewayAuthorizer(
        recorder,  # type: ignore[arg-type]
        NAMED,
        GatewayTokenCache(harness.clock, max_entries=100, margin_seconds=30),
        token_header=TokenHeader(),
        tool_header="x-mcp-tool",
        route_from_envoy=route_from_envoy,
    )
    return authorizer, recorder


async def test_the_route_envoy_names_decides_not_host_or_path(harness: Harness) -> None:
    # The path says /docs, Envoy says it forwards to crm: the token is for crm, where it goes.
    authorizer, recorder = _named(harness, route_from_envoy=True)
    request = replace(gw("/docs/x", bearer(harness)), route_name="crm")
    assert isinstance(await authorizer.authorize(request), Allowed)
    assert recorder.requests[0].audience == CRM_AUDIENCE


@pytest.mark.parametrize(
    "route_name",
    [None, "", "CRM", "crm ", "unknown"],
    ids=["absent", "empty", "case", "space", "unknown"],
)
async def test_without_a_known_route_name_nothing_is_guessed(
    harness: Harness, route_name: str | None
) -> None:
    authorizer, recorder = _named(harness, route_from_envoy=True)
    request = replace(gw("/docs/x", bearer(harness)), route_name=route_name)
    verdict = await authorizer.authorize(request)
    assert isinstance(verdict, Denied) and verdict.status == 403
    assert recorder.requests == []


async def test_the_tool_header_reaches_policy_whole_never_cut(harness: Harness) -> None:
    """Policy must decide on the value the upstream reads: a tool name longer than
    limits.max_value_length was cut to its first 1,024 characters for policy only."""
    authorizer, recorder = build(harness)
    tool = "find" + "-x" * 600  # 1,204 characters
    verdict = await authorizer.authorize(gw("/crm/tools", {**bearer(harness), "x-mcp-tool": tool}))
    assert isinstance(verdict, Allowed)
    (request,) = recorder.requests
    assert request.context["tool"] == tool


async def test_the_gateway_context_passes_validation_as_the_adapters_own(harness: Harness) -> None:
    """Red team session 20, finding 4: validation refuses a `context` with a top-level `gateway`
    member from direct callers; the adapter's own context, which holds it, is exchanged."""
    authorizer, recorder = build(harness)
    verdict = await authorizer.authorize(gw("/crm", {**bearer(harness), "x-mcp-tool": "find"}))
    assert isinstance(verdict, Allowed)
    (request,) = recorder.requests
    assert request.context["gateway"] == "ext_authz"


async def test_a_tool_header_past_the_context_limit_is_refused_not_cut(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    tool = "find" + "x" * 9000  # past limits.max_context_bytes (8,192)
    verdict = await authorizer.authorize(gw("/crm/tools", {**bearer(harness), "x-mcp-tool": tool}))
    assert isinstance(verdict, Denied)
    assert verdict.status == 400
    assert recorder.requests == []  # refused at validation, never decided


async def test_a_token_signed_by_a_revoked_key_is_not_served_from_the_cache(
    harness: Harness, tmp_path: Path
) -> None:
    recorder = RecordingExchanger(harness.exchanger)
    cache = GatewayTokenCache(
        harness.clock, max_entries=100, margin_seconds=30, published=harness.keyring.publishes
    )
    authorizer = GatewayAuthorizer(
        recorder,  # type: ignore[arg-type]
        ROUTES,
        cache,
        token_header=TokenHeader(),
        tool_header="x-mcp-tool",
    )
    request = gw("/crm/tools", bearer(harness))
    first = await authorizer.authorize(request)
    assert isinstance(first, Allowed)
    assert await authorizer.authorize(request) == first  # a cache hit: one exchange
    assert len(recorder.requests) == 1
    old_kid = jwt.get_unverified_header(first.headers_to_set["authorization"].split()[1])["kid"]
    timing = Timing(jwks_max_age=300, max_token_lifetime=300, leeway=30, rotation_period=0)
    manager = KeyManager(
        harness.keystore, KeyAuditLog(tmp_path / "audit.log"), timing, harness.clock, "ES256"
    )
    manager.revoke(old_kid, Actor("security", "INC-1: the key leaked"))
    harness.keyring.reload()
    assert not harness.keyring.publishes(old_kid)
    again = await authorizer.authorize(request)
    assert isinstance(again, Allowed)
    new_kid = jwt.get_unverified_header(again.headers_to_set["authorization"].split()[1])["kid"]
    assert new_kid != old_kid and harness.keyring.publishes(new_kid)
    assert len(recorder.requests) == 2  # exchanged afresh, not served from the cache


async def test_a_user_token_whose_idp_key_left_the_jwks_is_not_served_from_the_cache(
    harness: Harness,
) -> None:
    """Red team, session 13: the cache is keyed by the user's token and served it without
    asking whether that token still verifies: after the IdP dropped the key that signed it (a
    compromise), the verified-subject cache forgot the token at the next JWKS refresh, but the
    gateway kept allowing it until the minted token neared expiry (up to 270 s)."""
    authorizer, recorder = build(harness, subject_verifier=True)
    request = gw("/crm/tools", bearer(harness))
    first = await authorizer.authorize(request)
    assert isinstance(first, Allowed)
    assert await authorizer.authorize(request) == first  # a cache hit: one exchange
    assert len(recorder.requests) == 1
    harness.fetcher.documents[f"{IDP_A}/jwks"] = {"keys": []}  # the IdP dropped its keys
    harness.clock.advance(31)  # past the JWKS cache's refetch interval
    await harness.issuers[IDP_A].jwks.refresh()
    again = await authorizer.authorize(request)
    # Before: Allowed, the cached token, with no exchange.
    assert isinstance(again, Denied) and again.status == 401
    assert len(recorder.requests) == 2  # exchanged afresh, refused at verification


async def test_a_context_spelled_into_another_part_never_shares_its_cache_entry(
    harness: Harness,
) -> None:
    """Red team session 16: the key joined its parts with NUL, and the cache is read before the
    request is validated. With the route Envoy names (the path no longer picks it), a path
    holding `\\x00tool=find` and no tool header made the key of the path without it and tool
    `find`: the token minted for that context was served for one that validation refuses (a
    NUL in the context), without an exchange. Envoy's codecs refuse a NUL in `:path` and header
    values, so only a caller sending Check itself could; each part is now length-prefixed, and
    no spelling of one context is another's."""
    authorizer, recorder = _named(harness, route_from_envoy=True)
    headers = bearer(harness)
    first = replace(gw("/crm/x", {**headers, "x-mcp-tool": "find"}), route_name="crm")
    assert isinstance(await authorizer.authorize(first), Allowed)
    spelled = replace(gw("/crm/x\x00tool=find", headers), route_name="crm")
    verdict = await authorizer.authorize(spelled)
    # Before: Allowed, the cached token. Now the exchange runs, and validation refuses it.
    assert isinstance(verdict, Denied) and verdict.status == 400
    assert len(recorder.requests) == 1  # refused at validation, never decided


# --- deadlines (red team session 20, finding 1) --------------------------------------------------


def timed(path: str, headers: Mapping[str, str], budget: float | None) -> GatewayRequest:
    return replace(gw(path, headers), time_budget=budget, flow="ipv4:10.0.0.9:5000")


async def test_the_exchange_runs_under_the_checks_deadline(harness: Harness) -> None:
    """The exchange behind a Check ran with no deadline (NO_DEADLINE at admission): under
    overload a Check Envoy had given up on still waited for a slot and was run to the end."""
    authorizer, recorder = build(harness)
    headers = bearer(harness)
    assert isinstance(await authorizer.authorize(timed("/crm", headers, 0.2)), Allowed)
    other = {**headers, "x-mcp-tool": "find"}  # another cache key
    assert isinstance(await authorizer.authorize(timed("/crm", other, None)), Allowed)
    assert recorder.options == [
        {"time_budget": pytest.approx(0.2), "flow": "ipv4:10.0.0.9:5000"},
        {"time_budget": None, "flow": "ipv4:10.0.0.9:5000"},  # Envoy sent none: as before
    ]


async def test_a_check_whose_deadline_passed_is_refused_before_any_work(harness: Harness) -> None:
    authorizer, recorder = build(harness)
    verdict = await authorizer.authorize(timed("/crm", bearer(harness), 0.0))
    assert isinstance(verdict, Denied)
    assert verdict.status in (429, 503)
    assert recorder.options == [{"time_budget": 0.0, "flow": "ipv4:10.0.0.9:5000"}]


class FirstRunsOutOfTime:
    """The first exchange waits for `release`, then is refused as its deadline passed; the
    others go to the real exchanger."""

    def __init__(self, inner: TokenExchanger) -> None:
        self.inner = inner
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.budgets: list[float | None] = []

    async def handle(self, call: ExchangeCall, **kwargs: Any) -> ExchangeResult:
        self.budgets.append(kwargs.get("time_budget"))
        if len(self.budgets) == 1:
            self.started.set()
            await self.release.wait()
            raise DeadlineExceededError("the caller's deadline passed")
        return await self.inner.handle(call, **kwargs)


@pytest.mark.parametrize(
    ("later", "retried"),
    [
        pytest.param(10.0, True, id="later-deadline-runs-its-own"),
        pytest.param(None, True, id="no-deadline-runs-its-own"),
        pytest.param(0.1, False, id="same-deadline-shares-the-refusal"),
        pytest.param(0.05, False, id="earlier-deadline-shares-the-refusal"),
    ],
)
async def test_a_check_that_joined_an_exchange_with_less_time_is_not_refused_for_its_deadline(
    harness: Harness, later: float | None, retried: bool
) -> None:
    """One exchange per key runs under the deadline of the Check that started it; a Check that
    joined it with more time left gets one exchange of its own when that one runs out of time,
    rather than a refusal for a deadline that was not its own."""
    exchanger = FirstRunsOutOfTime(harness.exchanger)
    authorizer = GatewayAuthorizer(
        exchanger,  # type: ignore[arg-type]
        ROUTES,
        GatewayTokenCache(harness.clock, max_entries=100, margin_seconds=30),
        token_header=TokenHeader(),
        tool_header="x-mcp-tool",
    )
    headers = bearer(harness)
    first = asyncio.ensure_future(authorizer.authorize(timed("/crm", headers, 0.1)))
    await asyncio.wait_for(exchanger.started.wait(), 5)
    second = asyncio.ensure_future(authorizer.authorize(timed("/crm", headers, later)))
    # The second Check reaches the running flight at its first step (nothing before it awaits
    # without a cached token); had it not joined, the budgets below would say so.
    await asyncio.sleep(0)
    exchanger.release.set()
    starter, joiner = await asyncio.gather(first, second)
    assert isinstance(starter, Denied) and starter.status == 503
    if retried:
        assert isinstance(joiner, Allowed)
        assert exchanger.budgets == [pytest.approx(0.1), later and pytest.approx(later)]
    else:
        assert joiner == starter
        assert exchanger.budgets == [pytest.approx(0.1)]
