"""TokenMinter: lifetime caps, key retirement, jti, reserved claims, self-verification, typ."""

import base64
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from sekisho.constants import (
    TOKEN_TYPE_ACCESS_TOKEN,
    TOKEN_TYPE_ID_JAG,
    TOKEN_TYPE_ID_TOKEN,
)
from sekisho.errors import (
    AccessDeniedError,
    InvalidTokenError,
    ServerError,
    TemporarilyUnavailableError,
)
from sekisho.minting.claims import RESERVED_CLAIMS
from sekisho.minting.minter import TokenMinter
from sekisho.models import Caller, Decision, ExchangeRequest, MintedToken, VerifiedToken
from sekisho.signing.keyring import Keyring
from sekisho.signing.material import PublicKey, generate_private_key
from sekisho.signing.signer import LocalSigner, Signer, published_jwk
from sekisho.status.filestore import FileStatusStore
from sekisho.status.issuer import AllocationPolicy, StatusListIssuer

from tests.fakes.clock import FakeClock
from tests.unit.minting.signing_keys import StaticKeyStore, fixture_signer, keyring_over

NOW = 1_800_000_000
ISSUER = "https://sekisho.example.com"
AS = "https://crm-as.example.com"
CRM = "https://crm.example.com/mcp"
MAX_LIFETIME = 300

REQUEST = ExchangeRequest(
    subject_token="inbound",
    subject_token_type=TOKEN_TYPE_ID_TOKEN,
    requested_token_type=TOKEN_TYPE_ID_JAG,
    audience=AS,
    caller=Caller(id="agent-runtime", authenticated_by="mtls"),
)
SUBJECT = VerifiedToken(
    issuer="https://idp.example.com",
    subject="alice",
    token_type=TOKEN_TYPE_ID_TOKEN,
    expires_at=NOW + 3600,
    client_id="agent-app",
)
DECISION = Decision(allow=True, scopes=("crm.read",), resources=(CRM,), client_id="crm-client")


def _minter(
    *,
    retire_after: int = 0,
    signer: Signer | None = None,
    max_lifetime: int = MAX_LIFETIME,
    clock: FakeClock | None = None,
    **kwargs: Any,
) -> TokenMinter:
    store = StaticKeyStore(signer=signer or fixture_signer(), retire_after=retire_after)
    return TokenMinter(
        keyring_over(store),
        clock or FakeClock(NOW),
        issuer=ISSUER,
        max_lifetime_seconds=max_lifetime,
        **kwargs,
    )


def _decode(minted: MintedToken, signer: Signer | None = None) -> dict[str, Any]:
    key = jwt.PyJWK(published_jwk(signer or fixture_signer()))
    return jwt.decode(
        minted.token,
        key,
        algorithms=["ES256"],
        options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
    )


# --- lifetime: min(config max, policy ttl, requested, subject exp - now, key retire - now) -----

# Every cap far above the winner, so each case shows exactly one cap winning.
ROOMY: dict[str, int] = {
    "max": MAX_LIFETIME,
    "ttl": 3000,
    "requested": 3000,
    "subject_exp": NOW + 3000,
    "retire_after": NOW + 3000,
}


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        pytest.param({}, MAX_LIFETIME, id="config-max"),
        pytest.param({"max": 600, "ttl": 120}, 120, id="policy-ttl"),
        pytest.param({"requested": 60}, 60, id="requested-lifetime"),
        pytest.param({"subject_exp": NOW + 45}, 45, id="subject-token-exp"),
        pytest.param({"retire_after": NOW + 30}, 30, id="key-retirement"),
        pytest.param({"max": 3600}, 3000, id="all-other-caps-tie"),
    ],
)
async def test_each_lifetime_cap_wins_in_turn(caps: dict[str, int], expected: int) -> None:
    c = {**ROOMY, **caps}
    minter = _minter(retire_after=c["retire_after"], max_lifetime=c["max"])
    minted = await minter.mint(
        replace(REQUEST, requested_lifetime_seconds=c["requested"]),
        replace(SUBJECT, expires_at=c["subject_exp"]),
        None,
        replace(DECISION, ttl_seconds=c["ttl"]),
    )
    claims = _decode(minted)
    assert (minted.issued_at, minted.expires_at) == (NOW, NOW + expected)
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + expected)


@pytest.mark.parametrize(
    ("caps", "ignored"),
    [
        pytest.param({"ttl": None}, "policy-ttl", id="no-policy-ttl"),
        pytest.param({"requested": 0}, "requested", id="no-requested-lifetime"),
        pytest.param({"retire_after": 0}, "retirement", id="no-planned-retirement"),
    ],
)
async def test_unset_caps_do_not_shorten_the_lifetime(caps: dict[str, Any], ignored: str) -> None:
    c: dict[str, Any] = {**ROOMY, **caps}
    minted = await _minter(retire_after=c["retire_after"]).mint(
        replace(REQUEST, requested_lifetime_seconds=c["requested"]),
        replace(SUBJECT, expires_at=c["subject_exp"]),
        None,
        replace(DECISION, ttl_seconds=c["ttl"]),
    )
    assert minted.expires_at - minted.issued_at == MAX_LIFETIME, ignored


@pytest.mark.parametrize(
    ("subject_exp", "retire_after", "ttl", "error", "reason"),
    [
        pytest.param(NOW, 0, None, InvalidTokenError, "invalid_request", id="subject-expires-now"),
        pytest.param(NOW - 10, 0, None, InvalidTokenError, "invalid_request", id="subject-expired"),
        pytest.param(
            NOW + 3600, NOW, None, TemporarilyUnavailableError, "temporarily_unavailable",
            id="key-retires-now",
        ),
        pytest.param(
            NOW + 3600, NOW - 1, None, TemporarilyUnavailableError, "temporarily_unavailable",
            id="key-past-retirement",
        ),
        pytest.param(NOW + 3600, 0, 0, AccessDeniedError, "access_denied", id="policy-ttl-zero"),
        pytest.param(
            NOW - 10, NOW - 1, 0, InvalidTokenError, "invalid_request",
            id="expired-subject-reported-first",
        ),
    ],
)  # fmt: skip
async def test_no_lifetime_left_is_refused_by_whichever_cap_is_spent(
    subject_exp: int, retire_after: int, ttl: int | None, error: type[Exception], reason: str
) -> None:
    minter = _minter(retire_after=retire_after)
    with pytest.raises(error) as raised:
        await minter.mint(
            REQUEST,
            replace(SUBJECT, expires_at=subject_exp),
            None,
            replace(DECISION, ttl_seconds=ttl),
        )
    assert getattr(raised.value, "reason", None) == reason


async def test_exp_is_never_after_the_keys_retirement() -> None:
    retire_after = NOW + 1000
    clock = FakeClock(NOW)
    minter = _minter(retire_after=retire_after, clock=clock)
    seen = set()
    while clock.now() < retire_after:
        minted = await minter.mint(
            REQUEST, replace(SUBJECT, expires_at=int(clock.now()) + 3600), None, DECISION
        )
        assert minted.expires_at <= retire_after
        seen.add(minted.expires_at - minted.issued_at)
        clock.advance(37)
    assert MAX_LIFETIME in seen and min(seen) < MAX_LIFETIME  # both regimes were exercised
    clock.current = retire_after  # the key may no longer sign at all
    with pytest.raises(TemporarilyUnavailableError):
        await minter.mint(REQUEST, replace(SUBJECT, expires_at=retire_after + 3600), None, DECISION)


# --- jti ---------------------------------------------------------------------------------------


async def test_jti_is_unique_and_at_least_128_bits() -> None:
    minter = _minter()
    jtis = []
    for _ in range(1000):
        minted = await minter.mint(REQUEST, SUBJECT, None, DECISION)
        assert _decode(minted)["jti"] == minted.jti
        jtis.append(minted.jti)
    assert len(set(jtis)) == 1000
    for jti in jtis:
        assert len(base64.urlsafe_b64decode(jti + "=" * (-len(jti) % 4))) * 8 >= 128


async def test_jti_comes_from_the_injected_factory() -> None:
    minted = await _minter(jti_factory=lambda: "fixed-jti").mint(REQUEST, SUBJECT, None, DECISION)
    assert minted.jti == _decode(minted)["jti"] == "fixed-jti"


# --- policy claims and client id -------------------------------------------------------------


@pytest.mark.parametrize("claim", sorted(RESERVED_CLAIMS))
async def test_reserved_claim_from_policy_is_access_denied(claim: str) -> None:
    decision = replace(DECISION, claims={"department": "sales", claim: "attacker"})
    with pytest.raises(AccessDeniedError) as raised:
        await _minter().mint(REQUEST, SUBJECT, None, decision)
    assert claim in raised.value.log_detail
    assert claim not in raised.value.public_message


async def test_a_refused_mint_uses_up_no_status_index(tmp_path: Path) -> None:
    """The refusals mint() makes (a reserved claim, no client id) come before the status-list
    index is reserved: a caller refused in a loop does not burn through the worker's lease."""
    clock = FakeClock(NOW)
    store = FileStatusStore(tmp_path / "status.db")
    policy = AllocationPolicy(
        list_size=1000, lease_size=8, lease_seconds=60, max_token_lifetime=330
    )
    status = StatusListIssuer(store, clock, base_uri="https://s.example/lists", policy=policy)
    minter = _minter(clock=clock, status=status)
    reserved = (SUBJECT, replace(DECISION, claims={"iss": "attacker"}))
    no_client = (replace(SUBJECT, client_id=""), replace(DECISION, client_id=""))
    for subject, decision in (reserved, no_client):
        with pytest.raises(AccessDeniedError):
            await minter.mint(REQUEST, subject, None, decision)
    assert _decode(await minter.mint(REQUEST, SUBJECT, None, DECISION))["status"] == {
        "status_list": {"idx": 0, "uri": "https://s.example/lists/1"}
    }


async def test_unreserved_policy_claims_reach_the_token() -> None:
    decision = replace(DECISION, claims={"department": "sales", "crm_roles": ["viewer"]})
    claims = _decode(await _minter().mint(REQUEST, SUBJECT, None, decision))
    assert (claims["department"], claims["crm_roles"]) == ("sales", ["viewer"])


@pytest.mark.parametrize(
    ("decision_client", "subject_client", "expected"),
    [
        pytest.param("crm-client", "agent-app", "crm-client", id="decision-wins"),
        pytest.param("", "agent-app", "agent-app", id="subject-fallback"),
        pytest.param("crm-client", "", "crm-client", id="decision-only"),
    ],
)
async def test_client_id(decision_client: str, subject_client: str, expected: str) -> None:
    minted = await _minter().mint(
        REQUEST,
        replace(SUBJECT, client_id=subject_client),
        None,
        replace(DECISION, client_id=decision_client),
    )
    assert _decode(minted)["client_id"] == expected


async def test_no_client_id_is_access_denied_naming_where_one_comes_from() -> None:
    with pytest.raises(AccessDeniedError) as caught:
        await _minter().mint(
            REQUEST, replace(SUBJECT, client_id=""), None, replace(DECISION, client_id="")
        )
    assert "client_id" in caught.value.public_message
    assert "[[callers]] client_ids" in caught.value.public_message
    # The rule that differs by subject token type (an access token without a client_id claim
    # names no client even with a single aud), met over curl in the session 14 walkthrough.
    assert "an ID token also by azp or a single aud" in caught.value.public_message


# --- act -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller_id", "actor_sub", "inbound_act", "expected"),
    [
        pytest.param("", "", None, None, id="no-actor"),
        pytest.param("agent-runtime", "", None, {"sub": "agent-runtime"}, id="caller"),
        pytest.param(
            "agent-runtime",
            "workload-7",
            None,
            {"sub": "workload-7", "iss": SUBJECT.issuer, "act": {"sub": "agent-runtime"}},
            id="actor-token-keeps-the-caller",
        ),
        pytest.param(
            "agent-runtime",
            "",
            {"sub": "gateway"},
            {"sub": "agent-runtime", "act": {"sub": "gateway"}},
            id="caller-over-inbound-act",
        ),
    ],
)
async def test_act_names_the_current_actor(
    caller_id: str, actor_sub: str, inbound_act: dict[str, Any] | None, expected: object
) -> None:
    actor = replace(SUBJECT, subject=actor_sub) if actor_sub else None
    minted = await _minter().mint(
        replace(REQUEST, caller=Caller(id=caller_id)),
        replace(SUBJECT, act=inbound_act),
        actor,
        DECISION,
    )
    assert _decode(minted).get("act") == expected


# --- profiles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "typ", "token_type", "aud"),
    [
        pytest.param(TOKEN_TYPE_ID_JAG, "oauth-id-jag+jwt", "N_A", AS, id="id-jag"),
        pytest.param(TOKEN_TYPE_ACCESS_TOKEN, "at+jwt", "Bearer", CRM, id="access-token"),
    ],
)
async def test_typ_and_token_type_per_profile(
    requested: str, typ: str, token_type: str, aud: str
) -> None:
    minted = await _minter().mint(
        replace(REQUEST, requested_token_type=requested), SUBJECT, None, DECISION
    )
    signer = fixture_signer()
    assert jwt.get_unverified_header(minted.token) == {
        "alg": "ES256",
        "kid": signer.kid,
        "typ": typ,
    }
    assert (minted.issued_token_type, minted.token_type, minted.kid) == (
        requested,
        token_type,
        signer.kid,
    )
    assert _decode(minted)["aud"] == aud
    # The response audience is the requested one whatever `aud` says.
    assert minted.audience == AS


async def test_one_minter_heads_each_token_with_the_current_kid_and_typ() -> None:
    # The encoder keeps encoded headers per (alg, kid, typ): after a rotation, and across
    # profiles, every token must still name the key that signed it and its own profile (fails
    # if the kept header were keyed by less than all three).
    store = StaticKeyStore()
    keyring = keyring_over(store)
    minter = TokenMinter(keyring, FakeClock(NOW), issuer=ISSUER, max_lifetime_seconds=300)
    rotated = LocalSigner("rotated-kid", "ES256", generate_private_key("ES256"))
    for signer in (store.signer, rotated, store.signer):
        store.signer = signer
        keyring.load()
        for requested, typ in (
            (TOKEN_TYPE_ID_JAG, "oauth-id-jag+jwt"),
            (TOKEN_TYPE_ACCESS_TOKEN, "at+jwt"),
        ):
            request = replace(REQUEST, requested_token_type=requested)
            minted = await minter.mint(request, SUBJECT, None, DECISION)
            segment = minted.token.split(".", 1)[0]
            header = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
            expected = f'{{"alg":"ES256","kid":"{signer.kid}","typ":"{typ}"}}'
            assert header == expected.encode()
            assert _decode(minted, signer)["jti"] == minted.jti


async def test_minted_token_facts_match_the_decision() -> None:
    decision = replace(DECISION, scopes=("crm.read", "crm.write"), resources=(CRM,))
    minted = await _minter().mint(REQUEST, SUBJECT, None, decision)
    claims = _decode(minted)
    assert (minted.scopes, minted.resources) == (("crm.read", "crm.write"), (CRM,))
    assert (claims["scope"], claims["resource"], claims["iss"]) == (
        "crm.read crm.write",
        CRM,
        ISSUER,
    )


# --- signing failures ---------------------------------------------------------------------------


@dataclass
class GarbageSigner:
    """The fixture key's identity, but sign() returns whatever the test gives it."""

    output: bytes

    def __post_init__(self) -> None:
        self._real = fixture_signer()

    @property
    def kid(self) -> str:
        return self._real.kid

    @property
    def alg(self) -> str:
        return self._real.alg

    @property
    def public_key(self) -> PublicKey:
        return self._real.public_key

    async def sign(self, signing_input: bytes) -> bytes:
        return self.output


def _other_key_signature() -> bytes:
    other = LocalSigner("other", "ES256", generate_private_key("ES256"))
    return other.sign_now(b"x.y")


def _own_key_signature_of_other_input() -> bytes:
    return fixture_signer().sign_now(b"x.y")


def _flipped(signature: bytes, index: int) -> bytes:
    return signature[:index] + bytes([signature[index] ^ 1]) + signature[index + 1 :]


@pytest.mark.parametrize(
    "output",
    [
        pytest.param(b"garbage", id="garbage"),
        pytest.param(b"\x00" * 64, id="right-length-zeros"),
        pytest.param(_other_key_signature(), id="signature-by-another-key"),
        pytest.param(b"", id="empty"),
        pytest.param(_own_key_signature_of_other_input(), id="right-key-other-input"),
        pytest.param(_flipped(_own_key_signature_of_other_input(), 5), id="r-bit-flipped"),
        pytest.param(_flipped(_own_key_signature_of_other_input(), 40), id="s-bit-flipped"),
        pytest.param(_own_key_signature_of_other_input()[:63], id="truncated"),
        pytest.param(b"\xff" * 64, id="r-and-s-over-the-order"),
    ],
)
async def test_self_verification_failure_is_a_server_error(output: bytes) -> None:
    with pytest.raises(ServerError) as raised:
        await _minter(signer=GarbageSigner(output)).mint(REQUEST, SUBJECT, None, DECISION)
    assert type(raised.value) is ServerError
    assert raised.value.reason == "server_error"


async def test_no_signing_key_is_temporarily_unavailable() -> None:
    minter = TokenMinter(
        Keyring(StaticKeyStore()), FakeClock(NOW), issuer=ISSUER, max_lifetime_seconds=300
    )
    with pytest.raises(TemporarilyUnavailableError):
        await minter.mint(REQUEST, SUBJECT, None, DECISION)
