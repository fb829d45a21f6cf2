"""Leg 1 of MCP Enterprise-Managed Authorization for the official MCP Python SDK (mcp ≥ 2.3):
an `assertion_provider` for `mcp.client.auth.extensions.identity_assertion.
IdentityAssertionOAuthProvider` that gets the ID-JAG from Sekisho.

    provider = IdentityAssertionOAuthProvider(
        server_url=mcp_url, storage=storage, client_id=..., client_secret=..., issuer=as_issuer,
        assertion_provider=SekishoAssertionProvider(sekisho, lambda: user_id_token),
    )

The SDK calls it with (audience, resource): the MCP authorization server's issuer (the ID-JAG's
`aud`) and the MCP server's resource identifier (its `resource` claim). A fresh ID-JAG is minted
per call, since the authorization server refuses a replayed `jti`; the SDK caches the access
token it gets in return.
"""

from collections.abc import Callable, Sequence

from sekisho.client.exchanger import TokenExchangeClient
from sekisho.constants import TOKEN_TYPE_ID_JAG


class SekishoAssertionProvider:
    """`async (audience, resource) -> ID-JAG` backed by Sekisho's ExchangeToken."""

    def __init__(
        self,
        client: TokenExchangeClient,
        subject_token: Callable[[], str],
        *,
        scopes: Sequence[str] = (),
    ) -> None:
        self._client = client
        self._subject_token = subject_token
        self._scopes = tuple(scopes)

    async def __call__(self, audience: str, resource: str) -> str:
        """Raises: sekisho.client.ExchangeError subclasses (denial, step-up, unavailable)."""
        token = await self._client.exchange(
            self._subject_token(),
            audience,
            resources=[resource],
            scopes=self._scopes,
            requested_token_type=TOKEN_TYPE_ID_JAG,
        )
        return token.access_token
