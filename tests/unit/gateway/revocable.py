"""A gateway behind a revocation gate over a file status store, as the service wires them:
the exchange refuses revoked and suspended subjects, and the gateway token cache drops their
tokens (shared by the revocation and suspension tests)."""

from dataclasses import dataclass
from pathlib import Path

from sekisho.audit import AuditLog
from sekisho.exchange import TokenExchanger
from sekisho.gateway.authorizer import GatewayAuthorizer, TokenHeader
from sekisho.gateway.cache import GatewayTokenCache
from sekisho.gateway.routes import RouteTable
from sekisho.minting.minter import TokenMinter
from sekisho.policy.engine import PolicyEngine
from sekisho.status.filestore import FileStatusStore
from sekisho.status.revocations import RevocationGate

from tests.bounds import request_limits
from tests.harness import SEKISHO_ISSUER, Harness
from tests.unit.gateway.test_authorizer import ROUTES


@dataclass
class RevocableGateway:
    store: FileStatusStore
    gate: RevocationGate
    cache: GatewayTokenCache
    authorizer: GatewayAuthorizer


async def revocable_gateway(
    harness: Harness,
    tmp_path: Path,
    policy: PolicyEngine | None = None,
    routes: RouteTable = ROUTES,
) -> RevocableGateway:
    """The gateway with a fresh status store (view refreshed once, max 10 s stale); `policy`
    defaults to the harness's engine, `routes` to test_authorizer's."""
    store = FileStatusStore(tmp_path / "status.db")
    gate = RevocationGate(store, harness.clock, max_stale_seconds=10)
    await gate.refresh()
    minter = TokenMinter(
        harness.keyring, harness.clock, issuer=SEKISHO_ISSUER, max_lifetime_seconds=300
    )
    exchanger = TokenExchanger(
        harness.verifier, harness.policy if policy is None else policy, minter, harness.clock,
        AuditLog(),
        revocations=gate, limits=request_limits(),
    )  # fmt: skip
    cache = GatewayTokenCache(
        harness.clock, max_entries=100, margin_seconds=30, revoked=gate.revoked
    )
    authorizer = GatewayAuthorizer(
        exchanger,
        routes,
        cache,
        token_header=TokenHeader(),
        tool_header="x-mcp-tool",
    )
    return RevocableGateway(store, gate, cache, authorizer)
