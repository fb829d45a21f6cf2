"""aiohttp application: what downstream servers and operators fetch over HTTP.

- `{issuer path}/.well-known/jwks.json`: the JWK Set, same bytes as the GetJwks RPC.
- `/.well-known/oauth-authorization-server{issuer path}`: RFC 8414 §3 metadata.
- `/healthz` (process alive) and `/readyz` (keys and policy loaded).
- `/oauth2/token`: RFC 8693 token exchange (http/token.py), when [[token_endpoint.clients]] or
  [[callers]] (mTLS only) are configured.
- never `/metrics`: Prometheus exposition is on its own admin listener (create_metrics_app,
  `[metrics] listen`), so the public listener tells an anonymous caller nothing.
- `{issuer path}/statuslists[/{id}]`: Token Status Lists, when [status_list] enabled
  (http/statuslist.py).
"""

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from sekisho.constants import (
    ASYMMETRIC_ALGORITHMS,
    GRANT_TYPE_TOKEN_EXCHANGE,
    SUPPORTED_SUBJECT_TOKEN_TYPES,
)
from sekisho.errors import InvalidRequestError
from sekisho.http.oauth_errors import refusal_response
from sekisho.http.statuslist import STATUS_LISTS_PATH, StatusListEndpoint
from sekisho.http.token import TOKEN_PATH, TokenEndpoint
from sekisho.profiles import PROFILES
from sekisho.signing.keyring import Keyring

JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"
# The JWKS max-age while the keyring is degraded (a failed reload, retried in the background):
# the set served then may lack a key that did not load, be empty (key states unreadable) or be
# the last good one kept (KMS unreachable), and under the usual `[tokens] jwks_max_age_seconds`
# (300 s) an HTTP cache or downstream kept it that long after the keystore recovered (red team
# session 15, left then). Short rather than no-store: a downstream refetches once the max-age
# has passed (sekisho.verify at least once a second, on a new connection), and a fleet doing
# that every second for the whole failure would spend the listener's new-connection budget.
DEGRADED_JWKS_MAX_AGE_SECONDS = 10
# What every answer names as its server: the product, never aiohttp's and Python's versions
# (aiohttp's default `Server: Python/3.11 aiohttp/3.x` tells an anonymous caller which known bugs
# to try).
SERVER_HEADER = "sekisho"


def authorization_server_metadata(
    issuer: str,
    signing_algs: list[str],
    *,
    token_endpoint_auth_methods: Sequence[str] | None = None,
    status_lists: bool = False,
) -> dict[str, Any]:
    """RFC 8414 §2 metadata, with the ID-JAG draft's identity-chaining member.

    Token-endpoint members appear only when POST /oauth2/token is served: then
    `token_endpoint_auth_methods` are its client authentication methods (TokenEndpoint's).
    """
    metadata: dict[str, Any] = {
        "issuer": issuer,
        "jwks_uri": issuer + JWKS_PATH,
        "identity_chaining_requested_token_types_supported": [
            profile.token_type_urn for profile in PROFILES
        ],
        "token_exchange_subject_token_types_supported": sorted(SUPPORTED_SUBJECT_TOKEN_TYPES),
        "id_jag_signing_alg_values_supported": signing_algs,
        "access_token_signing_alg_values_supported": signing_algs,
    }
    if status_lists:  # draft-ietf-oauth-status-list §9.3
        metadata["status_list_aggregation_endpoint"] = issuer + STATUS_LISTS_PATH
    if token_endpoint_auth_methods is not None:
        metadata.update(
            {
                "token_endpoint": issuer + TOKEN_PATH,
                "grant_types_supported": [GRANT_TYPE_TOKEN_EXCHANGE],
                "token_endpoint_auth_methods_supported": list(token_endpoint_auth_methods),
                "token_endpoint_auth_signing_alg_values_supported": sorted(ASYMMETRIC_ALGORITHMS),
            }
        )
    return metadata


def create_http_app(
    *,
    issuer: str,
    keyring: Keyring,
    ready: Callable[[], bool],
    jwks_max_age_seconds: int,
    token_endpoint: TokenEndpoint | None = None,
    status_lists: StatusListEndpoint | None = None,
    middlewares: Sequence[Any] = (),
) -> web.Application:
    """The HTTP application; paths follow the issuer's own path component."""
    issuer_path = urlsplit(issuer).path.rstrip("/")
    jwks_cache = f"public, max-age={jwks_max_age_seconds}"
    degraded_max_age = min(jwks_max_age_seconds, DEGRADED_JWKS_MAX_AGE_SECONDS)
    degraded_jwks_cache = f"public, max-age={degraded_max_age}"

    async def jwks(_: web.Request) -> web.Response:
        # Read with the bytes on the event loop: Keyring._install sets both in one step.
        degraded = keyring.degraded is not None
        return web.Response(
            body=keyring.jwks_bytes,
            content_type="application/jwk-set+json",
            headers={"Cache-Control": degraded_jwks_cache if degraded else jwks_cache},
        )

    async def server_metadata(_: web.Request) -> web.Response:
        # Algorithms of the keys actually published, so a rotation to another alg shows up here.
        metadata = authorization_server_metadata(
            issuer,
            keyring.published_algorithms(),
            token_endpoint_auth_methods=token_endpoint.auth_methods if token_endpoint else None,
            status_lists=status_lists is not None,
        )
        return web.Response(
            body=json.dumps(metadata).encode(),
            content_type="application/json",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    app = _application(64 * 1024, middlewares)
    app.router.add_get(issuer_path + JWKS_PATH, jwks)
    app.router.add_get(METADATA_PATH + issuer_path, server_metadata)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    if status_lists is not None:
        status_lists.add_routes(app, issuer_path)
    if token_endpoint is not None:
        app.router.add_post(issuer_path + TOKEN_PATH, token_endpoint.handle)
        app.router.add_route("*", issuer_path + TOKEN_PATH, _token_method_not_allowed)
    return app


def create_metrics_app(
    render: Callable[[], tuple[bytes, str]], middlewares: Sequence[Any] = ()
) -> web.Application:
    """The admin listener's application: GET /metrics only ([metrics] listen)."""
    app = _application(1024, middlewares)
    app.router.add_get("/metrics", _metrics_handler(render))
    return app


def _application(client_max_size: int, middlewares: Sequence[Any]) -> web.Application:
    """An application whose every answer, aiohttp's own 404 and 405 included, names the server
    as SERVER_HEADER (aiohttp fills `Server` in only after this hook, and only when unset); its
    answers to requests it cannot parse never reach the application (listener.py names them)."""
    app = web.Application(client_max_size=client_max_size, middlewares=list(middlewares))
    app.on_response_prepare.append(_name_the_server)
    return app


async def _name_the_server(_: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


async def _token_method_not_allowed(request: web.Request) -> web.Response:
    """Any method but POST on the token endpoint (RFC 6749 §3.2: the client MUST use POST): 405
    with `Allow: POST` and an RFC 6749 §5.2 JSON body and request id, as the endpoint's other
    refusals."""
    response = refusal_response(InvalidRequestError("the token endpoint takes POST only"), request)
    response.set_status(405)
    response.headers["Allow"] = "POST"
    return response


def _metrics_handler(
    render: Callable[[], tuple[bytes, str]],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        body, content_type = render()
        # The exposition content type carries its own version parameter; aiohttp's content_type
        # argument refuses parameters, so set the header as is.
        return web.Response(body=body, headers={"Content-Type": content_type})

    return handler
