"""What a network-facing Sekisho may trust (docs/security.md, issue 19 class 6).

http on loopback is accepted for an IdP, OPA or KMS, and Redis without TLS, because on a
developer's machine nothing else is there. On a host that serves the network, any local process
(another tenant's container sharing the network namespace, a compromised agent) can bind that
loopback port first and answer as the IdP (sign any user in), as OPA (allow everything) or as
Redis (forget every used assertion). So when a listener is not on loopback, such dependencies
are refused at start unless `[server] allow_loopback_dependencies = true` says this loopback is
private (a pod's sidecar), and that choice is logged. A development IdP (audience
`sekisho-dev`) authenticates nobody and is refused outright outside loopback.

A network-facing Sekisho with private_key_jwt clients and no shared replay cache is said at
every start (`replay_cache_process_local`): config refuses it with several workers, but cannot
see replicas, and an assertion replayed to another replica would be accepted there.
"""

import logging
from urllib.parse import urlsplit

from sekisho.config import Settings
from sekisho.constants import DEV_IDP_AUDIENCE
from sekisho.errors import ConfigError
from sekisho.urls import is_loopback_host

log = logging.getLogger(__name__)


def loopback_dependencies(settings: Settings) -> list[str]:
    """Each trusted dependency reached unauthenticated over loopback: `config key: url`."""
    found = [
        (f"trust.issuers[{i}].{name}", url)
        for i, entry in enumerate(settings.trust.issuers)
        for name, url in (
            ("issuer", entry.issuer),
            ("discovery_url", entry.discovery_url),
            ("jwks_uri", entry.jwks_uri),
        )
    ]
    if settings.policy.engine == "opa":
        found.append(("policy.opa_url", settings.policy.opa_url))
    found.append(("keys.kms_endpoint_url", settings.keys.kms_endpoint_url))
    found.append(("token_endpoint.replay_cache_url", settings.token_endpoint.replay_cache_url))
    if settings.status_list.enabled and settings.status_list.store == "redis":
        found.append(("status_list.redis_url", settings.status_list.redis_url))
    return [f"{key}: {url}" for key, url in found if _plain_loopback(url)]


def _plain_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return True
    return parts.scheme in ("http", "redis") and is_loopback_host(parts.hostname or "")


def dev_issuers(settings: Settings) -> list[str]:
    """Trusted issuers configured like the development IdP."""
    return [e.issuer for e in settings.trust.issuers if DEV_IDP_AUDIENCE in e.audiences]


def _say_process_local_replay_cache(settings: Settings) -> None:
    """Warn when client assertions (RFC 7523 §3 item 7: single use) are remembered in this
    process only: right for one replica of one worker, a replay hole beside other replicas."""
    endpoint = settings.token_endpoint
    assertion_clients = sorted(c.id for c in endpoint.clients if c.jwks)
    if assertion_clients and not endpoint.replay_cache_url:
        log.warning(
            "replay_cache_process_local",
            extra={
                "clients": assertion_clients,
                "fix": "with more than one replica set token_endpoint.replay_cache_url "
                "(a Redis every replica shares)",
            },
        )


def check_exposure(settings: Settings) -> None:
    """Refuse a network-facing config that trusts loopback dependencies or a dev IdP.

    Raises: ConfigError naming each offending key.
    """
    policy = settings.policy
    if policy.engine == "opa" and not policy.opa_token_env:
        # OPA's API without its token authentication accepts modules from any local process
        # (docs/operators.md "Securing OPA"); said at every start until it is configured.
        log.warning("opa_api_unauthenticated", extra={"opa_url": policy.opa_url})
    if settings.server.on_loopback:
        return
    _say_process_local_replay_cache(settings)
    dev = dev_issuers(settings)
    if dev:
        raise ConfigError(
            "a listener is not on loopback but trust.issuers holds a development IdP "
            f"(audience {DEV_IDP_AUDIENCE!r}: {', '.join(dev)}); it authenticates nobody"
        )
    loopback = loopback_dependencies(settings)
    if not loopback:
        return
    if not settings.server.allow_loopback_dependencies:
        raise ConfigError(
            "a listener is not on loopback but these dependencies are trusted over plain "
            f"loopback, where any local process can answer for them: {'; '.join(loopback)} "
            "(use https/rediss, or set server.allow_loopback_dependencies = true if this "
            "loopback is private, e.g. a pod's sidecar)"
        )
    log.warning("loopback_dependencies_allowed", extra={"dependencies": loopback})
