"""Property tests of the inbound token verifier: random strings, mutations of an honest token and
honestly signed tokens with random headers and claims. The verifier either accepts a token whose
facts satisfy every rule, or refuses it with a typed error (InvalidTokenError, or
InvalidRequestError for size); no other exception ever escapes, and a mutated token never
verifies unless it is byte-for-byte the original."""

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_TOKEN
from sekisho.errors import InvalidRequestError
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.verify.jwks import JwksCache

from tests.bounds import max_act_depth
from tests.fakes.clock import FakeClock
from tests.fakes.fetcher import FakeFetcher
from tests.fakes.idp import TestIdp
from tests.harness import IDP_A, SEKISHO_ISSUER, issuer_configs
from tests.security._tokens import sign_with_key

B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
TOKEN_TYPES = st.sampled_from([TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_ACCESS_TOKEN])


@dataclass
class Rig:
    verifier: TokenVerifier
    idp: TestIdp
    clock: FakeClock
    loop: asyncio.AbstractEventLoop

    def verify(self, token: str, token_type: str) -> Any:
        """The verified token, or the InvalidRequestError (incl. InvalidTokenError) raised."""
        try:
            return self.loop.run_until_complete(self.verifier.verify(token, token_type))
        except InvalidRequestError as exc:
            assert len(token) < 16 or token not in exc.public_message  # noqa: PT017
            return exc


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    clock, idp = FakeClock(), TestIdp(IDP_A)
    fetcher = FakeFetcher({f"{IDP_A}/jwks": idp.jwks()})
    config = issuer_configs()[0]
    cache = JwksCache(IDP_A, fetcher, clock, jwks_uri=config.jwks_uri)
    verifier = TokenVerifier(
        {IDP_A: TrustedIssuer(config=config, jwks=cache)},
        clock,
        own_issuer=SEKISHO_ISSUER,
        leeway_seconds=30,
        max_token_bytes=16384,
        max_act_depth=max_act_depth(),
    )
    loop = asyncio.new_event_loop()
    yield Rig(verifier=verifier, idp=idp, clock=clock, loop=loop)
    loop.close()


def _is_error(outcome: Any) -> bool:
    return isinstance(outcome, InvalidRequestError)


@given(
    token=st.text(max_size=300)
    | st.from_regex(r"[A-Za-z0-9_-]{0,40}(\.[A-Za-z0-9_-]{0,40}){2}", fullmatch=True),
    token_type=TOKEN_TYPES,
)
def test_random_strings_never_verify(rig: Rig, token: str, token_type: str) -> None:
    assert _is_error(rig.verify(token, token_type))


MUTATIONS = st.sampled_from(["replace", "insert", "delete", "swap-segments", "truncate"])


@given(
    alg=st.sampled_from(["RS256", "ES256"]),
    mutation=MUTATIONS,
    position=st.integers(min_value=0),
    char=st.sampled_from(B64URL + ".=+/ \x00é"),
    token_type=TOKEN_TYPES,
)
def test_mutated_honest_tokens_never_verify(
    rig: Rig, *, alg: str, mutation: str, position: int, char: str, token_type: str
) -> None:
    honest = rig.idp.token(rig.clock.now(), alg=alg, client_id="agent-app")
    index = position % len(honest)
    if mutation == "replace":
        mutated = honest[:index] + char + honest[index + 1 :]
    elif mutation == "insert":
        mutated = honest[:index] + char + honest[index:]
    elif mutation == "delete":
        mutated = honest[:index] + honest[index + 1 :]
    elif mutation == "truncate":
        mutated = honest[:index]
    else:
        header, payload, signature = honest.split(".")
        mutated = f"{payload}.{header}.{signature}"
    assume(mutated != honest)
    assert _is_error(rig.verify(mutated, token_type))


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
NOW = int(FakeClock().now())
time_values = st.sampled_from([NOW - 3600, NOW - 10, NOW, NOW + 10, NOW + 3600]) | json_values
claim_values = {
    "iss": st.sampled_from([IDP_A, IDP_A + "/", SEKISHO_ISSUER, ""]) | json_values,
    "sub": st.sampled_from(["alice", ""]) | json_values,
    "aud": st.sampled_from(["agent-app", ["agent-app", "x"], ["x"], "AGENT-APP"]) | json_values,
    "exp": time_values,
    "nbf": time_values,
    "iat": time_values,
    "client_id": st.sampled_from(["agent-app", ""]) | json_values,
}
header_values = {
    "typ": st.sampled_from(["JWT", "at+jwt", "oauth-id-jag+jwt", "application/at+jwt"])
    | json_values,
    "crit": json_values,
    "cty": st.sampled_from(["JWT", "json"]) | json_values,
    "b64": json_values,
    "jku": json_values,
}


@given(
    overrides=st.fixed_dictionaries({}, optional=claim_values),
    dropped=st.sets(st.sampled_from(sorted(claim_values))),
    header=st.fixed_dictionaries({}, optional=header_values),
    token_type=TOKEN_TYPES,
)
def test_signed_tokens_with_random_claims_verify_only_when_every_rule_holds(
    rig: Rig,
    overrides: dict[str, Any],
    dropped: set[str],
    header: dict[str, Any],
    token_type: str,
) -> None:
    """Honest claims with some replaced by hostile values and some removed."""
    claims = rig.idp.claims(rig.clock.now(), client_id="agent-app") | overrides
    claims = {k: v for k, v in claims.items() if k not in dropped}
    full_header = {**header, "alg": "RS256", "kid": rig.idp.rsa_kid}
    token = sign_with_key(full_header, claims, rig.idp.rsa_key, "RS256")
    outcome = rig.verify(token, token_type)
    event("accepted" if not _is_error(outcome) else "refused")
    if _is_error(outcome):
        return
    now = rig.clock.now()
    # Accepted: every rule must hold, checked here independently of the verifier's code.
    assert claims.get("iss") == IDP_A
    sub = claims.get("sub")
    assert isinstance(sub, str) and sub and outcome.subject == sub
    exp = claims.get("exp")
    assert not isinstance(exp, bool) and isinstance(exp, int | float) and exp > now - 30
    for name in ("nbf", "iat"):
        value = claims.get(name)
        assert value is None or (not isinstance(value, bool) and value <= now + 30)
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    assert "agent-app" in auds  # IdP A lists no client_ids: aud is the only way in
    assert not {"crit", "b64"} & header.keys()
    assert str(header.get("cty", "")).upper() != "JWT"
    typ = header.get("typ", "")
    assert isinstance(typ, str)
    assert "id-jag" not in typ.lower()
    if token_type == TOKEN_TYPE_ID_TOKEN:
        assert "at+jwt" not in typ.lower()


def test_the_rig_accepts_an_honest_token(rig: Rig) -> None:
    """Control: the properties above are not vacuous; an honest token verifies in this rig."""
    token = rig.idp.token(rig.clock.now(), client_id="agent-app")
    assert not _is_error(rig.verify(token, TOKEN_TYPE_ID_TOKEN))
