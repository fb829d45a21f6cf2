"""An MCP authorization server and MCP server built with the official MCP Python SDK, trusting
Sekisho-issued ID-JAGs (leg 2 of MCP Enterprise-Managed Authorization).

`IdJagAuthorizationServer.exchange_identity_assertion` validates the ID-JAG with sekisho.verify
(signature, typ, iss, aud = this AS, exp, client_id = the authenticated client, resource ∈ the
resources this AS serves, jti single-use), enforces this server's tenant, grants the intersection
of the requested scopes with the ID-JAG's, and issues an opaque access token bound to the resource.
"""

import secrets
import time
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, IdentityAssertionParams, TokenError
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
from sekisho.constants import GRANT_TYPE_JWT_BEARER
from sekisho.verify import SekishoTokenVerifier, TokenRejectedError, VerifierUnavailableError
from starlette.applications import Starlette

ACCESS_TOKEN_SECONDS = 600
NOTES_BY_TENANT = {
    "acme": ["acme: Q3 pipeline review", "acme: onboarding checklist"],
    "globex": ["globex: reactor maintenance window"],
}


class IdJagAuthorizationServer:
    """The SDK's OAuthAuthorizationServerProvider, for the jwt-bearer (ID-JAG) grant only."""

    def __init__(
        self,
        verifier: SekishoTokenVerifier,
        clients: dict[str, str],
        *,
        tenant: str,
        resource: str,
    ) -> None:
        self._verifier = verifier
        self._clients = {
            client_id: OAuthClientInformationFull(
                client_id=client_id,
                client_secret=secret,
                redirect_uris=None,
                grant_types=[GRANT_TYPE_JWT_BEARER],
                token_endpoint_auth_method="client_secret_post",  # noqa: S106 (a method name)
            )
            for client_id, secret in clients.items()
        }
        self._tenant = tenant
        self._resource = resource
        self._tokens: dict[str, AccessToken] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self._clients.get(client_id)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        try:
            grant = await self._verifier.verify(params.assertion, client_id=client.client_id)
        except TokenRejectedError as exc:
            raise TokenError("invalid_grant", str(exc)) from exc
        except VerifierUnavailableError as exc:
            # The SDK has no temporarily_unavailable code; refusing is what matters (fail closed).
            raise TokenError("invalid_grant", "cannot validate the assertion now") from exc
        # A single-tenant server accepts only its tenant; a multi-tenant one ("") needs some tenant.
        if (self._tenant and grant.tenant != self._tenant) or not grant.tenant:
            raise TokenError("invalid_grant", "the assertion is for another tenant")
        if params.resource is not None and params.resource not in grant.resources:
            raise TokenError("invalid_target", "resource does not match the assertion")
        requested = set(params.scopes) if params.scopes else set(grant.scopes)
        scopes = sorted(requested & grant.scopes)
        token = secrets.token_urlsafe(32)
        self._tokens[token] = AccessToken(
            token=token,
            client_id=client.client_id or "",
            scopes=scopes,
            expires_at=int(time.time()) + ACCESS_TOKEN_SECONDS,
            resource=self._resource,
            subject=grant.subject,
            claims={"tenant": grant.tenant, "email": grant.claims.get("email", "")},
        )
        return OAuthToken(
            access_token=token, expires_in=ACCESS_TOKEN_SECONDS, scope=" ".join(scopes)
        )

    async def load_access_token(self, token: str) -> AccessToken | None:
        found = self._tokens.get(token)
        if found is None or (found.expires_at or 0) < time.time():
            return None
        return found

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        raise NotImplementedError("clients are provisioned, not registered dynamically")

    async def authorize(self, client: Any, params: Any) -> str:
        raise NotImplementedError("only the jwt-bearer grant is offered")

    async def load_authorization_code(self, client: Any, authorization_code: str) -> None:
        return None

    async def exchange_authorization_code(self, client: Any, authorization_code: Any) -> Any:
        raise TokenError("unsupported_grant_type")

    async def load_refresh_token(self, client: Any, refresh_token: str) -> None:
        return None

    async def exchange_refresh_token(self, client: Any, refresh_token: Any, scopes: Any) -> Any:
        raise TokenError("unsupported_grant_type")

    async def revoke_token(self, token: Any) -> None:
        self._tokens.pop(getattr(token, "token", ""), None)


def create_mcp_app(provider: IdJagAuthorizationServer, *, issuer: str, resource: str) -> Starlette:
    """The AS routes and the MCP server (`/mcp`, tool `whoami`) in one Starlette app."""
    server = MCPServer(
        "notes",
        auth_server_provider=provider,
        auth=AuthSettings(
            issuer_url=issuer,  # type: ignore[arg-type]
            resource_server_url=resource,  # type: ignore[arg-type]
            identity_assertion_enabled=True,
            validate_token_resource=True,
        ),
    )

    @server.tool()
    def whoami() -> dict[str, Any]:
        """Who is calling, with which scopes, for which tenant."""
        token = get_access_token()
        if token is None:
            return {}
        return {
            "sub": token.subject,
            "scopes": sorted(token.scopes),
            "tenant": (token.claims or {}).get("tenant", ""),
            "client_id": token.client_id,
        }

    @server.tool()
    def list_notes() -> dict[str, Any]:
        """The caller's tenant's notes: the tenant comes from the token, never from arguments."""
        token = get_access_token()
        tenant = (token.claims or {}).get("tenant", "") if token else ""
        return {"tenant": tenant, "notes": NOTES_BY_TENANT.get(tenant, [])}

    return server.streamable_http_app(host="127.0.0.1")
