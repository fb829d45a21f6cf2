"""Issue 19, class 6: shared stores guarded.

A network-facing config that trusts an http IdP, OPA or KMS, or a TLS-less Redis, on loopback
(where any local process can bind the port first and answer as it) is refused at start unless
explicitly allowed, which is logged; a development IdP is refused outright. Redis beyond
loopback needs TLS and never holds a password inline; the replay cache authenticates as an ACL
user (real redis-server with the default user disabled).
"""

import logging
from typing import Any

import pytest
import redis
from pydantic import ValidationError
from sekisho.components import build_replay_cache
from sekisho.config import Settings
from sekisho.errors import ConfigError
from sekisho.exposure import check_exposure
from sekisho.verify.replay import ReplayCacheUnavailableError

from tests.redis_server import RedisServer, redis_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.security

PUBLIC = {
    "grpc_listen": "0.0.0.0:50051",
    "http_listen": "0.0.0.0:8443",
    "insecure_plaintext": True,  # behind a mesh sidecar: the listener question is not this test's
    "require_client_auth": False,
}
IDP = {"issuer": "https://idp.example.com", "jwks_uri": "https://idp.example.com/jwks", "audiences": ["app"]}  # fmt: skip


def _settings(server: dict[str, Any] | None = None, **tables: Any) -> Settings:
    tables.setdefault("trust", {"issuers": [IDP]})
    return Settings(server={**PUBLIC, **(server or {})}, **tables)


LOOPBACK_DEPENDENCIES = {
    "idp-issuer": {"trust": {"issuers": [{**IDP, "issuer": "http://127.0.0.1:9400"}]}},
    "idp-discovery": {
        "trust": {
            "issuers": [
                {
                    "issuer": "https://idp.example.com",
                    "audiences": ["app"],
                    "discovery_url": "http://localhost:9400/.well-known/x",
                }
            ]
        }
    },
    "idp-jwks-ipv6": {"trust": {"issuers": [{**IDP, "jwks_uri": "http://[::1]:9400/jwks"}]}},
    "idp-jwks-127/8": {"trust": {"issuers": [{**IDP, "jwks_uri": "http://127.0.0.2:9/jwks"}]}},
    "opa": {"policy": {"engine": "opa", "opa_url": "http://127.0.0.1:8181"}},
    "kms": {"keys": {"kms_endpoint_url": "http://127.0.0.1:4566"}},
    "redis": {"token_endpoint": {"replay_cache_url": "redis://127.0.0.1:6379/0"}},
    "redis-unix": {"token_endpoint": {"replay_cache_url": "unix:///run/redis.sock"}},
}


@pytest.mark.parametrize("dependency", list(LOOPBACK_DEPENDENCIES))
def test_network_facing_config_trusting_loopback_dependencies_is_refused(
    dependency: str, caplog: pytest.LogCaptureFixture
) -> None:
    tables = LOOPBACK_DEPENDENCIES[dependency]
    with pytest.raises(ConfigError, match="any local process can answer"):
        check_exposure(_settings(**tables))
    # Allowed explicitly (a pod's private loopback): started, and said so in the log.
    with caplog.at_level(logging.WARNING, logger="sekisho.exposure"):
        check_exposure(_settings({"allow_loopback_dependencies": True}, **tables))
    events = [r.getMessage() for r in caplog.records if r.getMessage() != "opa_api_unauthenticated"]
    assert events == ["loopback_dependencies_allowed"]
    # On loopback nothing else listens: fine without the override.
    local = {"grpc_listen": "127.0.0.1:50051", "http_listen": "127.0.0.1:8080"}
    check_exposure(Settings(server=local, **{"trust": {"issuers": [IDP]}, **tables}))


def test_a_dev_idp_is_refused_outside_loopback_even_when_loopback_is_allowed() -> None:
    dev = {"issuer": "http://127.0.0.1:9400", "jwks_uri": "http://127.0.0.1:9400/jwks",
           "audiences": ["sekisho-dev"]}  # fmt: skip
    with pytest.raises(ConfigError, match="development IdP"):
        check_exposure(_settings({"allow_loopback_dependencies": True}, trust={"issuers": [dev]}))


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        pytest.param("redis://redis.internal:6379/0", "needs TLS", id="plaintext-remote"),
        pytest.param("rediss://:hunter2@redis.internal:6380/0", "password", id="inline-password"),
        pytest.param("http://redis.internal", "redis://", id="not-redis"),
    ],
)
def test_redis_beyond_loopback_needs_tls_and_no_inline_password(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(token_endpoint={"replay_cache_url": url})


def test_rediss_with_an_acl_user_is_accepted() -> None:
    url = "rediss://sekisho@redis.internal:6380/0"
    endpoint = {"replay_cache_url": url, "replay_cache_password_env": "SEKISHO_REDIS_PASSWORD"}
    assert Settings(token_endpoint=endpoint).token_endpoint.replay_cache_url == url


async def test_replay_cache_authenticates_as_an_acl_user(
    redis_server: RedisServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admin = redis.Redis(port=redis_server.port)
    admin.execute_command("ACL", "SETUSER", "sekisho", "on", ">a-long-replay-password",
                          "~sekisho:jti:*", "+set", "+ping")  # fmt: skip
    admin.execute_command("ACL", "SETUSER", "default", "off")  # nobody else gets in
    url = f"redis://sekisho@127.0.0.1:{redis_server.port}/0"

    anonymous, close = build_replay_cache(f"redis://127.0.0.1:{redis_server.port}/0")
    with pytest.raises(ReplayCacheUnavailableError):
        await anonymous.first_use("iss", "jti-1", 2_000_000_000, 1_900_000_000)
    assert close is not None
    await close()

    with pytest.raises(ConfigError, match="SEKISHO_REDIS_PASSWORD"):
        build_replay_cache(url, "SEKISHO_REDIS_PASSWORD")
    monkeypatch.setenv("SEKISHO_REDIS_PASSWORD", "a-long-replay-password")
    cache, close = build_replay_cache(url, "SEKISHO_REDIS_PASSWORD")
    assert await cache.first_use("iss", "jti-1", 2_000_000_000, 1_900_000_000) is True
    assert await cache.first_use("iss", "jti-1", 2_000_000_000, 1_900_000_000) is False
    assert close is not None
    await close()


async def test_serve_refuses_before_loading_anything() -> None:
    from sekisho.service import start_service

    tables = LOOPBACK_DEPENDENCIES["opa"]
    with pytest.raises(ConfigError, match=r"policy\.opa_url"):
        await start_service(_settings(**tables))


def test_an_opa_without_token_authentication_is_called_out_at_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    local = {"grpc_listen": "127.0.0.1:50051", "http_listen": "127.0.0.1:8080"}
    opa = {"engine": "opa", "opa_url": "http://127.0.0.1:8181"}
    with caplog.at_level(logging.WARNING, logger="sekisho.exposure"):
        check_exposure(Settings(server=local, policy=opa))
        check_exposure(Settings(server=local, policy={**opa, "opa_token_env": "OPA_TOKEN"}))
    assert [r.getMessage() for r in caplog.records] == ["opa_api_unauthenticated"]


def test_assertion_clients_with_a_replay_cache_in_this_process_only_are_called_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Walkthrough, session 12 (carried over): config refuses an in-process replay cache with
    # several workers but cannot see replicas; beside another replica, an assertion replayed to
    # it would be accepted (RFC 7523 §3 item 7). A network-facing start says so every time.
    import json

    from cryptography.hazmat.primitives.asymmetric import ec
    from sekisho.signing.material import public_jwk

    jwk = public_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()) | {"kid": "k1"}
    assertion = {"id": "agent", "jwks": json.dumps({"keys": [jwk]})}
    basic = {"id": "basic", "secret_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"}
    shared = "rediss://sekisho@redis.internal:6380/0"
    local = {"grpc_listen": "127.0.0.1:50051", "http_listen": "127.0.0.1:8080"}
    with caplog.at_level(logging.WARNING, logger="sekisho.exposure"):
        check_exposure(_settings(token_endpoint={"clients": [assertion, basic]}))
        warned = list(caplog.records)
        caplog.clear()
        check_exposure(
            _settings(token_endpoint={"clients": [assertion], "replay_cache_url": shared})
        )
        check_exposure(_settings(token_endpoint={"clients": [basic]}))  # no assertions to replay
        check_exposure(Settings(server=local, token_endpoint={"clients": [assertion]}))
    assert [r.getMessage() for r in warned] == ["replay_cache_process_local"]
    assert warned[0].clients == ["agent"]  # type: ignore[attr-defined]
    assert caplog.records == []
