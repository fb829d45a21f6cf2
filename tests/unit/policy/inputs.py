"""Policy input documents built through the real input builder, and the shipped policy's paths."""

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sekisho.constants import TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.models import AuthenticatedBy, Caller, ExchangeRequest, VerifiedToken
from sekisho.policy.input import build_input

REPO = Path(__file__).resolve().parents[3]
POLICIES = REPO / "policies"
QUERY = "data.sekisho.exchange.decision"
NOW = 1_700_000_000

# Entries of the shipped policies/data/registry.json.
CRM = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"
DOCS = "https://docs-as.example.com"
DOCS_MCP = "https://docs.example.com/mcp"
DOCS_SEARCH = "https://docs.example.com/search"
UNKNOWN = "https://unknown-as.example.com"


def policy_input(
    audience: str,
    *,
    groups: Sequence[str] = (),
    scopes: Sequence[str] = (),
    resources: Sequence[str] = (),
    tenant: str = "",
    claims: Mapping[str, Any] | None = None,
    caller_id: str = "",
    authenticated_by: AuthenticatedBy = "none",
    actor: VerifiedToken | None = None,
    context: Mapping[str, Any] | None = None,
    now: int = NOW,
) -> dict[str, Any]:
    """The document the policy sees for one exchange by alice."""
    request = ExchangeRequest(
        subject_token="not-used-by-policy",
        subject_token_type=TOKEN_TYPE_ID_TOKEN,
        requested_token_type=TOKEN_TYPE_ID_JAG,
        audience=audience,
        resources=tuple(resources),
        scopes=tuple(scopes),
        context=dict(context or {}),
        caller=Caller(id=caller_id, authenticated_by=authenticated_by),
    )
    subject = VerifiedToken(
        issuer="https://idp.example.com",
        subject="alice",
        token_type=TOKEN_TYPE_ID_TOKEN,
        expires_at=NOW + 600,
        client_id="agent-app",
        tenant=tenant,
        email="alice@example.com",
        groups=tuple(groups),
        claims=dict(claims or {}),
    )
    return build_input(request, subject, actor, now)
