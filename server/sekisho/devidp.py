"""A development-only OpenID provider for trying Sekisho and for integration tests.

It serves OIDC discovery and a JWKS on a loopback address and signs ID tokens (or access
tokens) for any user you name. It refuses non-loopback addresses: it authenticates nobody.
"""

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from sekisho.signing.material import (
    private_key_from_pem,
    private_key_to_pem,
    public_jwk,
    thumbprint,
)
from sekisho.urls import is_loopback_host

KEY_FILE = "dev-idp-key.pem"


@dataclass(frozen=True)
class DevIdentityProvider:
    """An RS256 signing key and the issuer URL it answers for."""

    issuer: str
    key: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def open(cls, directory: Path, issuer: str) -> "DevIdentityProvider":
        """Load the key from `directory`, creating it on first use (so restarts keep the kid)."""
        path = directory / KEY_FILE
        if path.exists():
            key = private_key_from_pem(path.read_bytes(), "RS256")
        else:
            directory.mkdir(parents=True, exist_ok=True)
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            path.touch(mode=0o600)
            path.write_bytes(private_key_to_pem(key))
        assert isinstance(key, rsa.RSAPrivateKey)
        return cls(issuer=issuer, key=key, kid=thumbprint(public_jwk(key.public_key())))

    def jwks(self) -> dict[str, Any]:
        jwk = public_jwk(self.key.public_key())
        jwk.update({"kid": self.kid, "alg": "RS256", "use": "sig"})
        return {"keys": [jwk]}

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks.json",
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
        }

    def token(self, claims: dict[str, Any], *, ttl: int = 3600, typ: str = "JWT") -> str:
        # The IdP's own clock, not Sekisho's (a real IdP's is its own too): a test that needs
        # other times sets iat/exp/nbf in `claims`, which override these.
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex}
        body.update(claims)
        return jwt.encode(body, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": typ})


def issuer_for(listen: str) -> str:
    host, _, port = listen.rpartition(":")
    if not is_loopback_host(host.strip("[]")):
        raise ValueError("the dev IdP listens on loopback only (127.0.0.1, ::1, localhost)")
    return f"http://{host}:{port}"


def create_app(idp: DevIdentityProvider) -> web.Application:
    discovery = json.dumps(idp.discovery())
    jwks = json.dumps(idp.jwks())

    async def well_known(_: web.Request) -> web.Response:
        return web.Response(text=discovery, content_type="application/json")

    async def keys(_: web.Request) -> web.Response:
        return web.Response(
            text=jwks, content_type="application/json", headers={"Cache-Control": "max-age=60"}
        )

    app = web.Application()
    app.router.add_get("/.well-known/openid-configuration", well_known)
    app.router.add_get("/jwks.json", keys)
    return app
