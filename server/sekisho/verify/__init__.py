"""sekisho.verify: what a downstream server needs to trust Sekisho tokens.

keys = JwksClient("https://sekisho.example/.well-known/jwks.json", clock=time.time)
verifier = SekishoTokenVerifier(
    issuer="https://sekisho.example", audience="https://as.example", keys=keys,
    resources={"https://mcp.example/mcp"}, replay_cache=InMemoryReplayCache(),
)
token = await verifier.verify(assertion, client_id=authenticated_client)

Token status (draft-ietf-oauth-status-list): pass `status=StatusListClient(issuer=…, keys=keys)`
and tokens whose status list entry is not VALID (revoked by `sekisho revoke`) are rejected; add
`require_status=True` to reject tokens without a `status` claim too (they cannot be revoked).
"""

from sekisho.verify.errors import (
    InsufficientScopeError,
    ReplayedTokenError,
    StatusIssuerMismatchError,
    TokenRejectedError,
    VerificationError,
    VerifierUnavailableError,
)
from sekisho.verify.freshness import max_age_seconds
from sekisho.verify.jwks_client import JwksClient
from sekisho.verify.replay import (
    InMemoryReplayCache,
    RedisReplayCache,
    ReplayCache,
    ReplayCacheUnavailableError,
)
from sekisho.verify.status import StatusListClient
from sekisho.verify.tokens import SekishoTokenVerifier, VerifiedSekishoToken

__all__ = [
    "InMemoryReplayCache",
    "InsufficientScopeError",
    "JwksClient",
    "RedisReplayCache",
    "ReplayCache",
    "ReplayCacheUnavailableError",
    "ReplayedTokenError",
    "SekishoTokenVerifier",
    "StatusIssuerMismatchError",
    "StatusListClient",
    "TokenRejectedError",
    "VerificationError",
    "VerifiedSekishoToken",
    "VerifierUnavailableError",
    "max_age_seconds",
]
