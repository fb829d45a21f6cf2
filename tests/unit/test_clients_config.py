"""[[token_endpoint.clients]] validation and `sekisho clients hash-secret`."""

import io
import json

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sekisho.cli import main
from sekisho.config import Settings

PRIVATE = ec.generate_private_key(ec.SECP256R1())


def _jwks(private: bool = False, kid: str | None = "k1") -> str:
    jwk = json.loads(ECAlgorithm.to_jwk(PRIVATE if private else PRIVATE.public_key()))
    if kid:
        jwk["kid"] = kid
    return json.dumps({"keys": [jwk]})


def _clients(*entries: dict[str, str]) -> Settings:
    return Settings(token_endpoint={"clients": list(entries)})


def test_a_hashed_secret_and_a_public_jwks_are_accepted() -> None:
    settings = _clients(
        {"id": "gw", "secret_hash": PasswordHasher().hash("x" * 20)},
        {"id": "agent", "jwks": _jwks()},
    )
    assert [c.id for c in settings.token_endpoint.clients] == ["gw", "agent"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        pytest.param({"id": "gw"}, "needs a credential", id="no-credential"),
        pytest.param({"id": "gw", "secret_hash": "plaintext"}, "argon2id", id="plain-secret"),
        pytest.param({"id": "gw", "secret_hash": "$2b$12$bcrypt"}, "argon2id", id="other-hash"),
        pytest.param(
            {"id": "gw", "jwks": _jwks(private=True)}, "public keys only", id="private-jwk"
        ),
        pytest.param({"id": "gw", "jwks": _jwks(kid=None)}, "kid", id="jwk-without-kid"),
        pytest.param({"id": "gw", "jwks": "{not json"}, "JWK Set", id="bad-jwks"),
        pytest.param({"id": "a:b", "jwks": _jwks()}, "without ':'", id="colon-in-id"),
    ],
)
def test_bad_clients_are_refused(entry: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _clients(entry)


def test_duplicate_client_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="only once"):
        _clients({"id": "gw", "jwks": _jwks()}, {"id": "gw", "jwks": _jwks()})


def test_hash_secret_prints_a_verifiable_argon2id_hash(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-enough-client-secret\n"))
    assert main(["clients", "hash-secret"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$")
    assert PasswordHasher().verify(printed, "a-long-enough-client-secret")
    assert "a-long-enough-client-secret" not in printed


def test_hash_secret_refuses_a_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["clients", "hash-secret"]) == 2
