"""A test identity provider: fixture keys from tests/fakes/keys/, tokens with any header/claims."""

import base64
import json
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sekisho.signing.material import public_jwk, thumbprint

KEYS_DIR = Path(__file__).parent / "keys"


def load_private_key(name: str) -> Any:
    return serialization.load_pem_private_key((KEYS_DIR / name).read_bytes(), password=None)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestIdp:
    """Signs tokens as `issuer` with a fixed RSA (RS256) and EC (ES256) key."""

    __test__ = False  # not a pytest class

    def __init__(self, issuer: str, rsa_key: str = "idp_a_rsa.pem", ec_key: str = "idp_a_ec.pem"):
        self.issuer = issuer
        self.rsa_key: rsa.RSAPrivateKey = load_private_key(rsa_key)
        self.ec_key: ec.EllipticCurvePrivateKey = load_private_key(ec_key)
        self.rsa_kid = thumbprint(public_jwk(self.rsa_key.public_key()))
        self.ec_kid = thumbprint(public_jwk(self.ec_key.public_key()))

    def jwks(self) -> dict[str, Any]:
        keys = []
        for key, kid, alg in (
            (self.rsa_key, self.rsa_kid, "RS256"),
            (self.ec_key, self.ec_kid, "ES256"),
        ):
            jwk = public_jwk(key.public_key())
            jwk.update({"kid": kid, "alg": alg, "use": "sig"})
            keys.append(jwk)
        return {"keys": keys}

    def claims(self, now: float, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "alice",
            "aud": "agent-app",
            "iat": int(now),
            "exp": int(now) + 600,
            "auth_time": int(now) - 60,
            "email": "alice@example.com",
            "groups": ["sales"],
            "tenant": "acme",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        now: float,
        *,
        alg: str = "RS256",
        headers: dict[str, Any] | None = None,
        **claim_overrides: Any,
    ) -> str:
        key, kid = (
            (self.rsa_key, self.rsa_kid)
            if alg.startswith(("RS", "PS"))
            else (self.ec_key, self.ec_kid)
        )
        header = {"kid": kid}
        header.update(headers or {})
        return jwt.encode(self.claims(now, **claim_overrides), key, algorithm=alg, headers=header)

    @staticmethod
    def raw_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"sig") -> str:
        """A token assembled by hand (for malformed-token tests)."""
        h = b64url(json.dumps(header).encode())
        c = b64url(json.dumps(claims).encode())
        return f"{h}.{c}.{b64url(signature)}"
