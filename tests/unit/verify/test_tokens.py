"""SekishoTokenVerifier: one test per rule, named after the attack it stops."""

import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho.verify import (
    InMemoryReplayCache,
    InsufficientScopeError,
    ReplayCacheUnavailableError,
    ReplayedTokenError,
    SekishoTokenVerifier,
    TokenRejectedError,
    VerifierUnavailableError,
)

ISSUER = "https://sekisho.test"
AS = "https://crm-as.example.com"
MCP = "https://crm.example.com/mcp"
NOW = 1_800_000_000.0
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


class StaticKeys:
    """A KeySource holding one public key."""

    def __init__(self) -> None:
        self.jwk = jwt.PyJWK.from_json(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()), "ES256")

    async def key(self, kid: str) -> jwt.PyJWK:
        if kid != "k1":
            raise TokenRejectedError("unknown signing key")
        return self.jwk


class BrokenReplayCache:
    async def first_use(self, issuer: str, jti: str, expires_at: int, now: float) -> bool:
        raise ReplayCacheUnavailableError("down")


def mint(typ: str = "oauth-id-jag+jwt", key: Any = KEY, kid: str = "k1", **claims: Any) -> str:
    body: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AS,
        "client_id": "agent-at-crm",
        "jti": uuid.uuid4().hex,
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "scope": "crm.read crm.write",
        "resource": MCP,
        "tenant": "acme",
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm="ES256", headers={"typ": typ, "kid": kid})


def verifier(**overrides: Any) -> SekishoTokenVerifier:
    options: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AS,
        "keys": StaticKeys(),
        "resources": {MCP},
        "replay_cache": InMemoryReplayCache(),
        "clock": lambda: NOW,
    }
    options.update(overrides)
    return SekishoTokenVerifier(**options)


async def test_a_good_id_jag_verifies_and_exposes_scopes() -> None:
    token = await verifier().verify(mint(), client_id="agent-at-crm")
    assert (token.subject, token.tenant, token.resources) == ("alice", "acme", (MCP,))
    assert token.has_scope("crm.write")
    token.require_scopes("crm.read")
    with pytest.raises(InsufficientScopeError, match=r"crm\.admin"):
        token.require_scopes("crm.read", "crm.admin")


@pytest.mark.parametrize(
    ("token", "why"),
    [
        pytest.param(mint(typ="at+jwt"), "typ", id="access-token-redeemed-as-id-jag"),
        pytest.param(mint(typ="JWT"), "typ", id="generic-jwt-typ"),
        pytest.param(mint(iss="https://evil.example"), "issuer", id="foreign-issuer"),
        pytest.param(
            mint(aud="https://docs-as.example.com"), "(?i)audience", id="token-for-other-as"
        ),
        pytest.param(mint(aud=[AS, "https://x.example"]), "one audience", id="multi-audience"),
        pytest.param(mint(exp=int(NOW) - 31), "expired", id="expired"),
        pytest.param(mint(iat=int(NOW) + 120), "future", id="issued-in-future"),
        pytest.param(mint(key=OTHER_KEY), "[Ss]ignature", id="forged-signature"),
        pytest.param(mint(kid="k2"), "unknown", id="unknown-kid"),
        pytest.param(
            mint(resource="https://docs.example.com/mcp"), "resource", id="foreign-resource"
        ),
        pytest.param(mint(resource=None), "resource", id="no-resource"),
        pytest.param(mint(jti=None), "jti", id="no-jti"),
        pytest.param(mint(client_id="someone-else"), "client_id", id="client-id-mismatch"),
        pytest.param("not.a.jwt", "malformed", id="garbage"),
        pytest.param(mint(client_id=["agent-at-crm"]), "client_id is not a string", id="list-cid"),
        pytest.param(mint(sub=["alice"]), "Subject must be a string", id="list-sub"),
        pytest.param(mint(jti=7), "JWT ID must be a string", id="number-jti"),
        pytest.param(mint(scope=["crm.read"]), "scope is not a string", id="list-scope"),
        pytest.param(mint(tenant={"id": "acme"}), "tenant is not a string", id="object-tenant"),
    ],
)
async def test_bad_tokens_are_rejected(token: str, why: str) -> None:
    with pytest.raises(TokenRejectedError, match=why):
        await verifier().verify(token, client_id="agent-at-crm")


async def test_an_id_jag_verified_without_the_authenticated_client_is_a_wiring_error() -> None:
    # Draft ID-JAG (leg 2): the authorization server MUST check that the ID-JAG's client_id is
    # the client that authenticated. verify() compared it only when given client_id=, so an AS
    # that left it out redeemed an ID-JAG minted for one client for any other (session 14
    # walkthrough, left to the lead then; red team). No verifier setting could make it check.
    stolen = mint(client_id="another-client")
    with pytest.raises(ValueError, match="client_id"):
        await verifier().verify(stolen)
    with pytest.raises(TokenRejectedError, match="client_id"):
        await verifier().verify(stolen, client_id="agent-at-crm")
    # Access tokens: a resource server does not authenticate the client; still optional.
    check = verifier(profile="access_token", audience=MCP, resources=None, replay_cache=None)
    assert (await check.verify(mint(typ="at+jwt", aud=MCP))).client_id == "agent-at-crm"


async def test_alg_none_is_rejected() -> None:
    body = {"iss": ISSUER, "sub": "a", "aud": AS, "exp": int(NOW) + 60}
    token = jwt.encode(
        body, None, algorithm="none", headers={"typ": "oauth-id-jag+jwt", "kid": "k1"}
    )
    with pytest.raises(TokenRejectedError, match="algorithm"):
        await verifier().verify(token, client_id="agent-at-crm")


async def test_replayed_id_jag_is_refused() -> None:
    check = verifier()
    token = mint()
    await check.verify(token, client_id="agent-at-crm")
    with pytest.raises(ReplayedTokenError):
        await check.verify(token, client_id="agent-at-crm")


async def test_replay_cache_down_refuses_instead_of_accepting() -> None:
    with pytest.raises(VerifierUnavailableError):
        await verifier(replay_cache=BrokenReplayCache()).verify(mint(), client_id="agent-at-crm")


def test_id_jag_profile_requires_a_replay_cache() -> None:
    with pytest.raises(ValueError, match="replay cache"):
        verifier(replay_cache=None)


async def test_access_token_profile_checks_typ_and_resource_audience() -> None:
    check = verifier(profile="access_token", audience=MCP, resources=None, replay_cache=None)
    token = await check.verify(mint(typ="at+jwt", aud=MCP))
    assert token.audience == MCP
    with pytest.raises(TokenRejectedError, match="typ"):
        await check.verify(mint(aud=MCP))  # an ID-JAG is never an access token


async def test_in_memory_replay_cache_forgets_only_after_expiry() -> None:
    cache = InMemoryReplayCache()
    assert await cache.first_use("iss", "j", 100, now=50)
    assert not await cache.first_use("iss", "j", 100, now=99)
    assert await cache.first_use("other-iss", "j", 100, now=99)  # scoped by issuer
    assert await cache.first_use("iss", "j", 200, now=101)


async def test_full_in_memory_replay_cache_refuses() -> None:
    cache = InMemoryReplayCache(max_entries=1)
    assert await cache.first_use("iss", "a", 100, now=0)
    with pytest.raises(ReplayCacheUnavailableError):
        await cache.first_use("iss", "b", 100, now=0)


def _unread(*_: Any, **__: Any) -> Any:
    raise AssertionError("PyJWT was handed the token")


async def test_an_oversized_token_is_refused_on_its_length_before_pyjwt_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A downstream is handed whatever a client sends, and PyJWT base64-decodes every segment
    (and parses the header) before any signature check: a made-up token costs a length check."""
    token = mint(padding="x" * 20_000)
    monkeypatch.setattr(jwt, "get_unverified_header", _unread)
    monkeypatch.setattr(jwt, "decode", _unread)
    with pytest.raises(TokenRejectedError, match="longer than 16384"):
        await verifier().verify(token, client_id="agent-at-crm")


async def test_a_token_with_a_huge_header_is_refused_before_the_header_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    header = jwt.utils.base64url_encode(b'{"alg":"ES256","kid":"k1","x":"' + b"a" * 4000 + b'"}')
    token = header.decode() + "." + mint().split(".", 1)[1]
    monkeypatch.setattr(jwt, "get_unverified_header", _unread)
    with pytest.raises(TokenRejectedError, match="header longer than 4096"):
        await verifier().verify(token, client_id="agent-at-crm")


async def test_a_token_just_under_the_bounds_is_verified_as_before() -> None:
    token = mint(padding="x" * 11_000)
    assert len(token) < 16384
    verified = await verifier().verify(token, client_id="agent-at-crm")
    assert verified.subject == "alice"


# Red team session 20: one claim, two readings. The server splits a scope string on SP only and
# grants only RFC 6749 scope tokens; str.split() also split on tabs, \x1c-\x1f and Unicode
# spaces, so one string to the server was several scopes here.
@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("crm.read\tcrm.admin", id="tab"),
        pytest.param("crm.read\u00a0crm.admin", id="nbsp"),
        pytest.param("crm.read\u3000crm.admin", id="ideographic-space"),
        pytest.param("crm.read\x1fcrm.admin", id="unit-separator"),
        pytest.param("crm.read\ncrm.admin", id="newline"),
        pytest.param("crm.read\x00crm.admin", id="nul"),
        pytest.param('crm.read "crm.admin"', id="dquote"),
    ],
)
async def test_a_scope_the_server_would_read_as_one_string_is_never_several_scopes(
    scope: str,
) -> None:
    with pytest.raises(TokenRejectedError, match="scope tokens"):
        await verifier().verify(mint(scope=scope), client_id="agent-at-crm")


async def test_scopes_are_split_on_spaces_as_the_server_splits_them() -> None:
    token = await verifier().verify(mint(scope=" crm.read  crm.write "), client_id="agent-at-crm")
    assert token.scopes == {"crm.read", "crm.write"}


@pytest.mark.parametrize(
    ("resource", "restricted"),
    [
        pytest.param(5, True, id="number"),
        pytest.param(5, False, id="number-unrestricted"),
        pytest.param({MCP: 1}, True, id="object-read-as-its-keys"),
        pytest.param([MCP, 5], False, id="list-with-a-number"),
        pytest.param([MCP, None], False, id="list-with-null"),
        pytest.param([[MCP]], False, id="nested-list"),
        pytest.param(True, False, id="bool"),
    ],
)
async def test_a_resource_claim_that_is_not_strings_is_rejected_not_a_crash(
    resource: Any, restricted: bool
) -> None:
    audience_resources = {MCP} if restricted else None
    with pytest.raises(TokenRejectedError, match="resource is not a string"):
        await verifier(resources=audience_resources).verify(
            mint(resource=resource), client_id="agent-at-crm"
        )


async def test_a_resource_list_of_strings_still_verifies() -> None:
    token = await verifier().verify(mint(resource=[MCP]), client_id="agent-at-crm")
    assert token.resources == (MCP,)
