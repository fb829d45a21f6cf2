"""Attacks on key discovery, against a real JWKS endpoint on loopback that counts every request:
unknown-kid storms, key URLs and keys carried in the token header, hostile JWKS documents.

The verifier is the real one, fetching over HTTP with the real fetcher; only the clock is fake,
so the refetch throttle is exercised deterministically.
"""

import asyncio
import datetime
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sekisho.constants import TOKEN_TYPE_ID_TOKEN
from sekisho.errors import InvalidTokenError, TemporarilyUnavailableError
from sekisho.identity.verifier import TokenVerifier
from sekisho.signing.material import public_jwk, thumbprint
from sekisho.verify import JwksClient
from sekisho.verify.fetcher import MAX_DOCUMENT_BYTES, HttpJsonFetcher
from sekisho.verify.jwk_set import MAX_KEYS

from tests.fakes.clock import FakeClock
from tests.fakes.idp import TestIdp
from tests.harness import IDP_A
from tests.jwks_server import jwks_server, live_verifier
from tests.security._tokens import b64url, sign_with_key

pytestmark = pytest.mark.security

STORM = 200


@pytest.fixture
async def fetcher() -> AsyncIterator[HttpJsonFetcher]:
    # A hang guard (no test here is about the fetch's timeout): a fetch of the IdP's JWKS (512 KiB
    # in the oversize test) that a loaded host slowed past 2 s would fail the verifications.
    client = HttpJsonFetcher(timeout_seconds=30.0)
    yield client
    await client.close()


@pytest.fixture
def idp() -> TestIdp:
    return TestIdp(IDP_A)


async def _verify(verifier: TokenVerifier, token: str) -> None:
    await verifier.verify(token, TOKEN_TYPE_ID_TOKEN)


async def _refused(verifier: TokenVerifier, token: str) -> None:
    with pytest.raises(InvalidTokenError):
        await _verify(verifier, token)


def _random_kid_tokens(idp: TestIdp, now: float) -> list[str]:
    return [idp.token(now, headers={"kid": secrets.token_urlsafe(12)}) for _ in range(STORM)]


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
async def test_unknown_kid_storm_does_not_hammer_the_idp(
    idp: TestIdp, fetcher: HttpJsonFetcher, mode: str
) -> None:
    """200 tokens with random kids cause at most one JWKS request per refetch interval."""
    clock = FakeClock()
    async with jwks_server(idp.jwks()) as server:
        verifier = live_verifier(server, fetcher, clock, issuer=IDP_A)
        await _verify(verifier, idp.token(clock.now()))  # primes the cache: 1 request
        for round_number in (1, 2):
            tokens = _random_kid_tokens(idp, clock.now())
            if mode == "sequential":
                for token in tokens:
                    await _refused(verifier, token)
            else:
                await asyncio.gather(*(_refused(verifier, token) for token in tokens))
            assert server.hits == round_number  # no refetch inside the interval
            clock.advance(31)  # past the interval: the next round may refetch exactly once
        await _verify(verifier, idp.token(clock.now()))  # a known kid never fetches
        assert server.hits == 2


def _attacker_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return public_jwk(key.public_key()) | {"kid": kid, "alg": "ES256", "use": "sig"}


def _self_signed_der(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp-a.example.com")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("header_name", ["jku", "x5u", "jwk", "x5c", "all"])
async def test_jku_x5u_jwk_x5c_headers_are_never_fetched_or_trusted(
    idp: TestIdp, fetcher: HttpJsonFetcher, header_name: str
) -> None:
    """CVE-2018-0114 class: a key or key URL the token brings itself never verifies it."""
    clock = FakeClock()
    attacker = ec.generate_private_key(ec.SECP256R1())
    kid = thumbprint(public_jwk(attacker.public_key()))
    async with jwks_server(idp.jwks()) as server:
        evil_jwks = server.url_for("/evil/jwks")
        carried: dict[str, Any] = {
            "jku": evil_jwks,
            "x5u": server.url_for("/evil/cert.pem"),
            "jwk": _attacker_jwk(attacker, kid),
            "x5c": [b64url(_self_signed_der(attacker))],
        }
        headers = carried if header_name == "all" else {header_name: carried[header_name]}
        verifier = live_verifier(server, fetcher, clock, issuer=IDP_A)
        claims = idp.claims(clock.now())
        for token_kid in (kid, idp.ec_kid):
            header = {"alg": "ES256", "kid": token_kid, **headers}
            await _refused(verifier, sign_with_key(header, claims, attacker, "ES256"))
        # Control: the IdP's own token carrying the same headers verifies against configured keys.
        await _verify(verifier, idp.token(clock.now(), alg="ES256", headers=headers))
        assert set(server.paths) == {"/jwks"}  # nothing under /evil was ever requested


def _padded_jwks(idp: TestIdp, size: int) -> bytes:
    document = idp.jwks() | {"padding": ""}
    overhead = len(json.dumps(document))
    return json.dumps(document | {"padding": "x" * (size - overhead)}).encode()


@pytest.mark.parametrize(
    "document",
    ["oversize-bytes", "too-many-keys"],
)
async def test_oversize_jwks_document_is_refused(
    idp: TestIdp, fetcher: HttpJsonFetcher, document: str
) -> None:
    """A JWKS over 512 KiB or with more than 64 keys is refused, never parsed into keys: with no
    earlier keys the issuer fails closed (UNAVAILABLE); with earlier keys those keep serving."""
    clock = FakeClock()
    extra = [_attacker_jwk(ec.generate_private_key(ec.SECP256R1()), f"k{i}") for i in range(64)]
    hostile: Any = (
        _padded_jwks(idp, MAX_DOCUMENT_BYTES + 1)
        if document == "oversize-bytes"
        else {"keys": idp.jwks()["keys"] + extra[: MAX_KEYS - 1]}
    )
    async with jwks_server(hostile) as server:
        verifier = live_verifier(server, fetcher, clock, issuer=IDP_A)
        with pytest.raises(TemporarilyUnavailableError):
            await _verify(verifier, idp.token(clock.now()))
        # Control: one byte (or one key) less is a legitimate document and verifies.
        server.document = (
            _padded_jwks(idp, MAX_DOCUMENT_BYTES)
            if document == "oversize-bytes"
            else {"keys": idp.jwks()["keys"] + extra[: MAX_KEYS - 2]}
        )
        clock.advance(31)
        await _verify(verifier, idp.token(clock.now()))
        # Last good keys survive a later hostile document.
        server.document = hostile
        clock.advance(31)
        # The unknown kid's refetch is refused: an outage (the kid may be a new key), not a bad
        # token; the keys held keep serving the others.
        with pytest.raises(TemporarilyUnavailableError):
            await _verify(verifier, idp.token(clock.now(), headers={"kid": "unknown"}))
        await _verify(verifier, idp.token(clock.now()))
        assert server.hits == 3


async def test_duplicate_kid_jwks_document_over_http_resolves_to_no_key(
    idp: TestIdp, fetcher: HttpJsonFetcher
) -> None:
    """An impostor key published under the IdP's kid makes that kid ambiguous: neither key
    verifies (first-wins or last-wins could pick the impostor); other kids keep working."""
    clock = FakeClock()
    impostor = ec.generate_private_key(ec.SECP256R1())
    document = idp.jwks()
    document["keys"].append(_attacker_jwk(impostor, idp.ec_kid))
    async with jwks_server(document) as server:
        verifier = live_verifier(server, fetcher, clock, issuer=IDP_A)
        claims = idp.claims(clock.now())
        header = {"alg": "ES256", "kid": idp.ec_kid}
        await _refused(verifier, sign_with_key(header, claims, impostor, "ES256"))
        await _refused(verifier, idp.token(clock.now(), alg="ES256"))
        await _verify(verifier, idp.token(clock.now(), alg="RS256"))


@pytest.mark.parametrize(
    "url",
    [
        "http://sekisho.example/.well-known/jwks.json",
        "http://127.0.0.1.evil.example/jwks",
        "http://evil.example\\@127.0.0.1/jwks",
        "ftp://127.0.0.1/jwks",
        "https:///jwks",
    ],
)
def test_the_downstream_jwks_client_refuses_keys_over_plain_http(url: str) -> None:
    # One JWKS client, one rule (sekisho/urls.py): keys come over https, plain http only from a
    # loopback host; over plain http anyone on the path can serve keys and so forge tokens.
    with pytest.raises(ValueError, match="https"):
        JwksClient(url, clock=lambda: 0.0)


@pytest.mark.parametrize(
    "url", ["https://sekisho.example/.well-known/jwks.json", "http://127.0.0.1:8080/jwks"]
)
def test_the_downstream_jwks_client_takes_https_and_loopback(url: str) -> None:
    assert JwksClient(url, clock=lambda: 0.0).fetch_count == 0
