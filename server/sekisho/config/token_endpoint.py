"""[token_endpoint] and [[token_endpoint.clients]]: POST /oauth2/token (RFC 8693 over HTTP)."""

import re
from pathlib import Path

from pydantic import field_validator, model_validator

from sekisho.config.section import Section, require_env_name, require_guarded_redis_url


class ClientConfig(Section):
    """One [[token_endpoint.clients]] entry: a caller of POST /oauth2/token (RFC 6749 §2.3).

    `secret_hash` (an argon2id PHC string from `sekisho clients hash-secret`) enables
    client_secret_basic; `jwks` (an inline JWK Set of public keys) enables private_key_jwt
    (RFC 7523 §2.2). The plain secret is never stored.
    """

    id: str
    secret_hash: str = ""
    jwks: str = ""

    @field_validator("id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        # RFC 6749 §2.3.1: the id travels form-urlencoded in HTTP Basic, so no ':' and no controls.
        if not re.fullmatch(r"[\x21-\x39\x3b-\x7e]{1,128}", value):
            raise ValueError("id must be 1-128 printable ASCII characters without ':' or spaces")
        return value

    @field_validator("secret_hash")
    @classmethod
    def _argon2id(cls, value: str) -> str:
        if value and not value.startswith("$argon2id$"):
            raise ValueError("secret_hash must be an argon2id hash (sekisho clients hash-secret)")
        return value

    @field_validator("jwks")
    @classmethod
    def _public_jwks(cls, value: str) -> str:
        if not value:
            return value
        import json

        try:
            keys = json.loads(value)["keys"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError("jwks must be a JSON JWK Set") from exc
        if not keys or any(not isinstance(k, dict) or "d" in k or not k.get("kid") for k in keys):
            raise ValueError("jwks must hold public keys only, each with a kid")
        return value

    @model_validator(mode="after")
    def _a_credential(self) -> "ClientConfig":
        if not self.secret_hash and not self.jwks:
            raise ValueError("set secret_hash and/or jwks: a client needs a credential")
        return self


class TokenEndpointConfig(Section):
    """[token_endpoint]: POST /oauth2/token (RFC 8693 over HTTP), served when clients exist."""

    clients: tuple[ClientConfig, ...] = ()
    # Where client-assertion jti values are remembered: "" = this process only (one worker);
    # "redis://host:port/db" = shared by every worker and replica (sekisho.verify.RedisReplayCache).
    # Beyond loopback: rediss:// (TLS), with an ACL user in the URL (rediss://sekisho@host/0)
    # and its password in the environment variable `replay_cache_password_env`.
    replay_cache_url: str = ""
    replay_cache_password_env: str = ""
    replay_cache_ca_file: Path | None = None

    @field_validator("replay_cache_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return require_guarded_redis_url(
            value, "replay_cache_url", env_setting="token_endpoint.replay_cache_password_env"
        )

    @field_validator("replay_cache_password_env")
    @classmethod
    def _password_env(cls, value: str) -> str:
        return require_env_name(value, "replay_cache_password_env")

    @field_validator("clients")
    @classmethod
    def _unique_clients(cls, value: tuple[ClientConfig, ...]) -> tuple[ClientConfig, ...]:
        ids = [client.id for client in value]
        if len(ids) != len(set(ids)):
            raise ValueError("each client id may appear only once")
        return value
