"""One test per known JWT attack class, driven through the whole exchange pipeline.

Every hostile token is otherwise honest: signed by the trusted IdP's real key unless the attack is
about the key, with valid times, audience and subject. So a rejection can only come from the
defence under test, and the positive controls show the same pipeline accepts the honest variant.
The spirit is pyjwt's tests/test_advisory.py; RFC 8725 (JWT BCP) names most of these classes.
"""

import asyncio
import base64
import itertools
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError
from sekisho.errors import InvalidRequestError, ServiceError
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.signing.material import public_jwk, thumbprint

from tests.harness import IDP_A, Harness
from tests.security._exchange import (
    EVIL_JWKS,
    IDP_A_JWKS,
    IDP_B_JWKS,
    accepted,
    idp_a_signed,
    rejected,
)
from tests.security._tokens import (
    b64url,
    encode_json,
    sign_hs256,
    sign_with_key,
    signing_input,
    unsigned,
)

pytestmark = pytest.mark.security


def attacker_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    jwk = public_jwk(key.public_key())
    jwk.update({"kid": kid, "alg": "ES256", "use": "sig"})
    return jwk


# --- positive controls ------------------------------------------------------------------------


async def test_honest_tokens_are_accepted(harness: Harness) -> None:
    """The control every rejection below is measured against."""
    now = harness.clock.now()
    for token in (
        harness.idp_a.token(now),
        harness.idp_a.token(now, alg="ES256"),
        idp_a_signed(harness),
        harness.idp_b.token(now, azp="agent-client"),
    ):
        result = await accepted(harness, token)
        assert result.minted.scopes == ("crm.read",)


# --- algorithm attacks ------------------------------------------------------------------------


# All 16 casings of "none": a case-insensitive lookup anywhere must not resurrect it.
NONE_CASINGS = sorted({"".join(c) for c in itertools.product(*zip("none", "NONE", strict=True))})


@pytest.mark.parametrize("alg", NONE_CASINGS)
@pytest.mark.parametrize("signature", [b"", b"forged"], ids=["empty-sig", "nonempty-sig"])
async def test_alg_none_every_casing(harness: Harness, alg: str, signature: bytes) -> None:
    """RFC 8725 §3.1: an unsecured JWS never verifies, whatever the casing, kid or signature."""
    assert len(NONE_CASINGS) == 16
    claims = harness.idp_a.claims(harness.clock.now())
    for header in ({"alg": alg, "kid": harness.idp_a.rsa_kid}, {"alg": alg}):
        await rejected(harness, unsigned(header, claims, signature))


def _pem_variants(key: rsa.RSAPublicKey) -> dict[str, bytes]:
    spki = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pkcs1 = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    return {"spki-pem": spki, "pkcs1-pem": pkcs1, "spki-pem-no-newline": spki.rstrip(b"\n")}


@pytest.mark.parametrize("variant", ["spki-pem", "pkcs1-pem", "spki-pem-no-newline"])
async def test_hs256_signed_with_issuer_public_key(harness: Harness, variant: str) -> None:
    """CVE-2015-9235 class: the IdP's public RSA key used as the HMAC secret."""
    secret = _pem_variants(harness.idp_a.rsa_key.public_key())[variant]
    claims = harness.idp_a.claims(harness.clock.now())
    for kid in (harness.idp_a.rsa_kid, None):
        header = {"alg": "HS256", "typ": "JWT"} | ({"kid": kid} if kid else {})
        await rejected(harness, sign_hs256(header, claims, secret))


async def test_hs256_with_symmetric_jwk_published_by_idp_is_rejected(harness: Harness) -> None:
    """Even an `oct` key in the IdP's own JWKS never verifies: only asymmetric algs are allowed."""
    secret = b"s" * 32
    document = harness.idp_a.jwks()
    document["keys"].append({"kty": "oct", "kid": "hmac", "k": b64url(secret), "use": "sig"})
    harness.fetcher.documents[IDP_A_JWKS] = document
    claims = harness.idp_a.claims(harness.clock.now())
    await rejected(harness, sign_hs256({"alg": "HS256", "kid": "hmac"}, claims, secret))


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_symmetric_or_none_alg_cannot_be_configured_for_an_issuer(alg: str) -> None:
    with pytest.raises(ValidationError, match="unsupported algorithm"):
        IssuerConfig(issuer=IDP_A, jwks_uri=IDP_A_JWKS, audiences=("agent-app",), algorithms=(alg,))


# --- key selection attacks --------------------------------------------------------------------


async def test_unknown_kid_is_rejected(harness: Harness) -> None:
    token = harness.idp_a.token(harness.clock.now(), headers={"kid": "no-such-kid"})
    await rejected(harness, token)
    assert harness.fetcher.calls == [IDP_A_JWKS]


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
async def test_unknown_kid_storm_refetches_jwks_at_most_once_per_interval(
    harness: Harness, mode: str
) -> None:
    """PyJWT's warning: a refetch per unknown kid lets anyone hammer the IdP through us."""
    await accepted(harness, harness.idp_a.token(harness.clock.now()))
    assert harness.fetcher.calls == [IDP_A_JWKS]
    harness.clock.advance(31)  # past min_refetch_interval: exactly one refetch is allowed
    now = harness.clock.now()
    tokens = [harness.idp_a.token(now, headers={"kid": f"made-up-{i}"}) for i in range(50)]
    if mode == "sequential":
        for token in tokens:
            await rejected(harness, token)
    else:
        await asyncio.gather(*(rejected(harness, token) for token in tokens))
    assert harness.fetcher.calls == [IDP_A_JWKS, IDP_A_JWKS]


async def test_rotated_key_is_picked_up_once_the_refetch_interval_has_passed(
    harness: Harness,
) -> None:
    """Control for the storm test: unknown kids do trigger a refetch, just a throttled one."""
    await accepted(harness, harness.idp_a.token(harness.clock.now()))
    new_key = ec.generate_private_key(ec.SECP256R1())
    document = harness.idp_a.jwks()
    document["keys"].append(attacker_jwk(new_key, "rotated-2"))
    harness.fetcher.documents[IDP_A_JWKS] = document
    claims = harness.idp_a.claims(harness.clock.now())
    token = sign_with_key({"alg": "ES256", "kid": "rotated-2"}, claims, new_key, "ES256")
    await rejected(harness, token)  # within the interval: no refetch yet
    assert len(harness.fetcher.calls) == 1
    harness.clock.advance(30)
    await accepted(harness, token)
    assert len(harness.fetcher.calls) == 2


@pytest.mark.parametrize(
    "kid",
    ["../../etc/passwd", "' OR 1=1 --", "kid\x00null", "https://evil.example.com/jwks", "*"],
    ids=["path-traversal", "sql-injection", "nul-byte", "url", "wildcard"],
)
async def test_kid_with_path_or_injection_characters(harness: Harness, kid: str) -> None:
    error = await rejected(harness, harness.idp_a.token(harness.clock.now(), headers={"kid": kid}))
    assert kid not in error.public_message
    assert harness.fetcher.calls == [IDP_A_JWKS]


@pytest.mark.parametrize("length", [257, 10_000])
async def test_overlong_kid_is_rejected_before_any_jwks_lookup(
    harness: Harness, length: int
) -> None:
    await rejected(harness, harness.idp_a.token(harness.clock.now(), headers={"kid": "k" * length}))
    assert harness.fetcher.calls == []


async def test_kid_at_the_length_limit_reaches_the_jwks_lookup(harness: Harness) -> None:
    """Control for the overlong-kid test: 256 characters is still looked up (and unknown)."""
    await rejected(harness, harness.idp_a.token(harness.clock.now(), headers={"kid": "k" * 256}))
    assert harness.fetcher.calls == [IDP_A_JWKS]


@pytest.mark.parametrize("kid", [7, ["a"], {"kid": "x"}, True], ids=["int", "list", "dict", "bool"])
async def test_non_string_kid_is_rejected(harness: Harness, kid: object) -> None:
    await rejected(harness, idp_a_signed(harness, {"kid": kid}))
    assert harness.fetcher.calls == []


@pytest.mark.parametrize("kid_of", ["idp-a", "idp-b"])
async def test_token_signed_by_idp_b_claiming_idp_a(harness: Harness, kid_of: str) -> None:
    """Trusted IdP B's key signs `iss` = IdP A. Under A's kid the signature cannot verify; under
    B's own kid the key is looked up at A only: keys never come from another issuer's JWKS."""
    claims = harness.idp_a.claims(harness.clock.now())
    kid = harness.idp_a.rsa_kid if kid_of == "idp-a" else harness.idp_b.rsa_kid
    header = {"alg": "RS256", "kid": kid}
    await rejected(harness, sign_with_key(header, claims, harness.idp_b.rsa_key, "RS256"))
    assert IDP_B_JWKS not in harness.fetcher.calls
    # Control: the same key signing B's own claims is accepted.
    await accepted(harness, harness.idp_b.token(harness.clock.now(), azp="agent-client"))


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_signature_from_a_different_key_with_the_right_kid_is_rejected(
    harness: Harness, alg: str
) -> None:
    claims = harness.idp_a.claims(harness.clock.now())
    if alg == "RS256":
        kid, key = harness.idp_a.rsa_kid, rsa.generate_private_key(65537, 2048)
    else:
        kid, key = harness.idp_a.ec_kid, ec.generate_private_key(ec.SECP256R1())
    await rejected(harness, sign_with_key({"alg": alg, "kid": kid}, claims, key, alg))


async def test_tampered_payload_under_a_genuine_signature_is_rejected(harness: Harness) -> None:
    genuine = harness.idp_a.token(harness.clock.now())
    _, _, signature = genuine.split(".")
    forged = harness.idp_a.claims(harness.clock.now(), sub="root", groups=["sales-admin"])
    header = {"alg": "RS256", "typ": "JWT", "kid": harness.idp_a.rsa_kid}
    await rejected(harness, f"{signing_input(header, forged)}.{signature}")


async def test_ecdsa_zero_signature_psychic_signature_is_rejected(harness: Harness) -> None:
    """CVE-2022-21449: r = s = 0 must never verify."""
    claims = harness.idp_a.claims(harness.clock.now())
    header = {"alg": "ES256", "kid": harness.idp_a.ec_kid}
    await rejected(harness, unsigned(header, claims, b"\x00" * 64))


async def test_duplicate_kid_in_jwks_drops_both_keys(harness: Harness) -> None:
    """An ambiguous kid resolves to no key: first-wins or last-wins could pick the attacker's."""
    impostor = public_jwk(rsa.generate_private_key(65537, 2048).public_key())
    impostor.update({"kid": harness.idp_a.rsa_kid, "alg": "RS256", "use": "sig"})
    document = harness.idp_a.jwks()
    document["keys"].append(impostor)
    harness.fetcher.documents[IDP_A_JWKS] = document
    await rejected(harness, harness.idp_a.token(harness.clock.now()))
    await accepted(harness, harness.idp_a.token(harness.clock.now(), alg="ES256"))


# --- header-embedded keys and processing directives -------------------------------------------


@pytest.mark.parametrize("kid_source", ["attacker-kid", "idp-kid"])
async def test_embedded_attacker_key_in_jwk_or_jku_header_is_ignored(
    harness: Harness, kid_source: str
) -> None:
    """CVE-2018-0114 class: a self-supplied `jwk`/`jku` must not become the verification key."""
    attacker = ec.generate_private_key(ec.SECP256R1())
    attacker_kid = thumbprint(public_jwk(attacker.public_key()))
    kid = attacker_kid if kid_source == "attacker-kid" else harness.idp_a.ec_kid
    jwk = attacker_jwk(attacker, kid)
    harness.fetcher.documents[EVIL_JWKS] = {"keys": [jwk]}
    header = {"alg": "ES256", "kid": kid, "jwk": jwk, "jku": EVIL_JWKS, "x5u": EVIL_JWKS}
    claims = harness.idp_a.claims(harness.clock.now())
    await rejected(harness, sign_with_key(header, claims, attacker, "ES256"))
    assert EVIL_JWKS not in harness.fetcher.calls


async def test_valid_token_with_bogus_key_url_headers_verifies_against_configured_jwks(
    harness: Harness,
) -> None:
    bogus = {
        "jku": EVIL_JWKS,
        "x5u": "https://evil.example.com/cert.pem",
        "x5c": ["bm90LWEtY2VydA"],
        "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
    }
    await accepted(harness, harness.idp_a.token(harness.clock.now(), headers=bogus))
    assert harness.fetcher.calls == [IDP_A_JWKS]


@pytest.mark.parametrize(
    "header",
    [
        {"crit": ["exp"]},
        {"crit": ["https://example.com/must-understand"], "https://example.com/must-understand": 1},
        {"crit": []},
    ],
    ids=["crit-registered", "crit-extension", "crit-empty"],
)
async def test_crit_header(harness: Harness, header: dict[str, Any]) -> None:
    """RFC 7515 §4.1.11: we understand no extension, so any `crit` means reject."""
    await rejected(harness, idp_a_signed(harness, header))


@pytest.mark.parametrize(
    "header",
    [{"b64": False, "crit": ["b64"]}, {"b64": False}, {"b64": True}],
    ids=["b64-false-crit", "b64-false", "b64-true"],
)
async def test_b64_false(harness: Harness, header: dict[str, Any]) -> None:
    """RFC 7797: an unencoded payload changes what the signature covers; refused outright."""
    await rejected(harness, idp_a_signed(harness, header))


@pytest.mark.parametrize(
    "header",
    [{"zip": "DEF"}, {"enc": "A256GCM"}, {"cty": "JWT"}, {"cty": "jwt"}],
    ids=["zip", "enc", "cty-JWT", "cty-jwt"],
)
async def test_jwe_or_nested_jwt(harness: Harness, header: dict[str, Any]) -> None:
    """JWE-only parameters and nested JWTs (RFC 7519 §5.2 cty) are refused, never unwrapped;
    the 5-part JWE shape is covered by test_token_that_is_not_three_part_compact_jws_is_rejected
    and a JWT-in-payload by test_nested_jwt_payload_is_rejected."""
    await rejected(harness, idp_a_signed(harness, header))


@pytest.mark.parametrize("parts", [2, 4, 5, 6])
async def test_token_that_is_not_three_part_compact_jws_is_rejected(
    harness: Harness, parts: int
) -> None:
    """A 5-part token is JWE-shaped: encrypted tokens never reach signature verification."""
    segments = [b64url(encode_json({"alg": "RSA-OAEP", "enc": "A256GCM"}))]
    segments += [b64url(b"x" * 16)] * (parts - 1)
    await rejected(harness, ".".join(segments))


async def test_nested_jwt_payload_is_rejected(harness: Harness) -> None:
    """A signed JWT whose payload is another JWT (cty JWT): we never unwrap."""
    inner = harness.idp_a.token(harness.clock.now())
    await rejected(harness, idp_a_signed(harness, {"cty": "JWT"}, inner.encode("ascii")))


# --- payload parsing --------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["payload", "header"])
async def test_duplicate_json_keys(harness: Harness, where: str) -> None:
    """Parser differential: last-wins here, first-wins in a log pipeline or a downstream."""
    now = harness.clock.now()
    header: dict[str, Any] | bytes = {"alg": "RS256", "kid": harness.idp_a.rsa_kid}
    payload: dict[str, Any] | bytes = harness.idp_a.claims(now, sub="alice")
    if where == "payload":
        payload = encode_json(payload)[:-1] + b',"sub":"mallory"}'
    else:
        header = encode_json(header)[:-1] + b',"alg":"RS256"}'
    await rejected(harness, sign_with_key(header, payload, harness.idp_a.rsa_key, "RS256"))


@pytest.mark.parametrize(
    "payload",
    [
        b'{"iss":"https://idp-a.example.com","sub":"\xff\xfe"}',
        '{"iss":"https://idp-a.example.com","sub":"jos\xe9"}'.encode("latin-1"),
        json.dumps({"iss": "https://idp-a.example.com", "sub": "alice"}).encode("utf-16"),
    ],
    ids=["invalid-bytes", "latin-1", "utf-16"],
)
async def test_non_utf8_token(harness: Harness, payload: bytes) -> None:
    """RFC 7519 §7.2: header and payload are UTF-8 JSON; anything else is refused, not guessed."""
    await rejected(harness, idp_a_signed(harness, payload=payload))
    header = b'{"alg":"RS256","kid":"' + harness.idp_a.rsa_kid.encode() + b'","x":"\xff\xfe"}'
    claims = harness.idp_a.claims(harness.clock.now())
    await rejected(harness, sign_with_key(header, claims, harness.idp_a.rsa_key, "RS256"))


def _same_bytes_other_spelling(segment: str) -> str:
    """`segment` with its last character changed only in bits the decoder ignores."""
    original = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_":
        other = segment[:-1] + char
        if (
            other != segment
            and base64.urlsafe_b64decode(other + "=" * (-len(other) % 4)) == original
        ):
            return other
    raise AssertionError("segment length leaves no unused bits")


@pytest.mark.parametrize("segment", [0, 1, 2], ids=["header", "payload", "signature"])
async def test_non_canonical_base64url_spelling_of_a_valid_token(
    harness: Harness, segment: int
) -> None:
    """RFC 4648 §3.5: one token, one spelling. Decoders ignore a last character's unused bits, so
    without the canonical check a stolen token has up to 16 spellings that all verify, and any
    cache or replay list keyed by the token string is bypassed. (Header and payload respellings
    also break the signature, which covers the segments as sent; the signature segment is the
    one only the canonical check catches.)"""
    for pad in range(4):  # find a token whose chosen segment length leaves unused bits
        token = harness.idp_a.token(harness.clock.now(), pad="x" * pad)
        parts = token.split(".")
        if len(parts[segment]) % 4 in (2, 3):
            break
    parts[segment] = _same_bytes_other_spelling(parts[segment])
    await rejected(harness, ".".join(parts))
    await accepted(harness, token)


# --- request-level abuse ----------------------------------------------------------------------


def _padded_token(harness: Harness, pad: int) -> str:
    return harness.idp_a.token(harness.clock.now(), pad="x" * pad)


async def test_oversize_token_is_rejected_as_invalid_request(harness: Harness) -> None:
    """The size cap comes first: no parse, no JWKS fetch, no signature work for a huge token."""
    low, high = 0, 16384  # bisect for the smallest padding that crosses the 16384-byte limit
    while low < high:
        middle = (low + high) // 2
        low, high = (
            (middle + 1, high) if len(_padded_token(harness, middle)) <= 16384 else (low, middle)
        )
    largest_allowed, oversize = _padded_token(harness, low - 1), _padded_token(harness, low)
    with pytest.raises(ServiceError) as caught:
        await harness.exchanger.exchange(harness.request(oversize))
    assert type(caught.value) is InvalidRequestError
    assert (caught.value.reason, caught.value.grpc_code) == ("invalid_request", "INVALID_ARGUMENT")
    assert harness.fetcher.calls == []
    assert len(largest_allowed) <= 16384
    await accepted(harness, largest_allowed)


@pytest.mark.parametrize(
    "scope",
    [
        "crm read",
        "crm.read\n",
        "crm\x00read",
        "crm\tread",
        'crm"read',
        "crm\\read",
        "",
        "crm\u00e9",
    ],
    ids=["space", "newline", "nul", "tab", "quote", "backslash", "empty", "non-ascii"],
)
def test_scopes_with_spaces_or_control_characters(harness: Harness, scope: str) -> None:
    """RFC 6749 §3.3 scope-token syntax; a space would smuggle a second scope into `scope`."""
    token = harness.idp_a.token(harness.clock.now())
    with pytest.raises(ServiceError) as caught:
        harness.request(token, scopes=[scope])
    assert type(caught.value) is InvalidRequestError
    assert (caught.value.reason, caught.value.grpc_code) == ("invalid_request", "INVALID_ARGUMENT")
    assert harness.request(token, scopes=["crm.read"]).scopes == ("crm.read",)
