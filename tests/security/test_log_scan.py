"""The log scanner (tests/log_scan.py) can fail: planted tokens and keys are found, public
material is not, and a record logged through a `sekisho` logger reaches it."""

import json
import logging

import pytest
from cryptography.hazmat.primitives import serialization
from sekisho.signing.material import generate_private_key, public_jwk

from tests.harness import Harness
from tests.log_scan import scanner, secrets_in

pytestmark = pytest.mark.security


def _private_jwk() -> dict[str, str]:
    from jwt.algorithms import ECAlgorithm

    key = generate_private_key("ES256")
    return dict(json.loads(ECAlgorithm.to_jwk(key)))


def test_planted_secrets_are_found(harness: Harness) -> None:
    token = harness.idp_a.token(harness.clock.now())
    unsigned = token.rsplit(".", 1)[0] + "."
    pem = (
        generate_private_key("ES256")
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    assert secrets_in(f"exchange failed for {token}") == ["jwt"]
    assert secrets_in(f"subject_token={unsigned} rejected") == ["jwt"]
    assert secrets_in(json.dumps({"event": "x", "detail": pem})) == ["pem-private-key"]
    assert secrets_in(json.dumps(_private_jwk())) == ["jwk-private-member"]
    assert secrets_in(repr(_private_jwk())) == ["jwk-private-member"]


def test_public_material_is_not_a_finding(harness: Harness) -> None:
    key = generate_private_key("ES256")
    benign = [
        json.dumps(public_jwk(key.public_key())),
        harness.keyring.jwks_bytes.decode(),
        "token_exchanged jti=Zm9vYmFy kid=abc iss=https://idp-a.example.com",
        "a.b.c eyJmb28iOiJiYXIifQ.eyJ4IjoxfQ.c2ln",  # JSON first segment, but no alg/typ
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    ]
    for text in benign:
        assert secrets_in(text) == [], text


def test_a_sekisho_log_record_reaches_the_scanner(
    harness: Harness, request: pytest.FixtureRequest
) -> None:
    """The installed handler sees DEBUG records of sekisho loggers; the planted finding is
    removed again so that this test does not fail the session it proves can fail."""
    findings = scanner(request.config).findings
    before = len(findings)
    token = harness.idp_a.token(harness.clock.now())
    logging.getLogger("sekisho.planted").debug("leak %s", "x", extra={"detail": token})
    planted = findings[before:]
    del findings[before:]
    assert [f.kinds for f in planted] == [["jwt"]]
    assert request.node.nodeid in planted[0].where
