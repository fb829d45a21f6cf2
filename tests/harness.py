"""The in-process pipeline wired with fakes: real verifier, real embedded (OPA Wasm) policy, real file keys,
fake clock and fake JWKS fetcher. Shared by unit, security and golden tests."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sekisho.audit import AuditLog
from sekisho.callers import CallerRegistry
from sekisho.config import Settings
from sekisho.constants import TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.exchange import TokenExchanger
from sekisho.identity.issuer_config import IssuerConfig
from sekisho.identity.verifier import TokenVerifier, TrustedIssuer
from sekisho.instruments import ExchangeInstruments
from sekisho.minting.minter import TokenMinter
from sekisho.models import Caller, ExchangeRequest
from sekisho.policy.wasm.engine import WasmPolicyEngine
from sekisho.signing.filestore import FileKeyStore
from sekisho.signing.keyring import Keyring
from sekisho.validation import ExchangeParams, build_request
from sekisho.verify.jwks import JwksCache

from tests.bounds import max_act_depth, request_limits
from tests.embedded import loaded_engine
from tests.fakes.clock import FakeClock
from tests.fakes.fetcher import FakeFetcher
from tests.fakes.idp import TestIdp

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
SEKISHO_ISSUER = "https://sekisho.example.com"
IDP_A = "https://idp-a.example.com"
IDP_B = "https://idp-b.example.com"
CRM_AUDIENCE = "https://crm-as.example.com"
CRM_RESOURCE = "https://crm.example.com/mcp"
DOCS_AUDIENCE = "https://docs-as.example.com"
# No [[callers]]: every caller is anonymous (what a config without them builds).
NO_CLIENT_AUTH = CallerRegistry((), require_client_auth=False)


def issuer_configs() -> tuple[IssuerConfig, ...]:
    return (
        IssuerConfig(issuer=IDP_A, jwks_uri=f"{IDP_A}/jwks", audiences=("agent-app",)),
        IssuerConfig(
            issuer=IDP_B,
            jwks_uri=f"{IDP_B}/jwks",
            audiences=("agent-app",),
            client_ids=("agent-client",),
            client_id_claim="azp",
        ),
    )


@dataclass
class Harness:
    """Everything a pipeline test needs to drive and inspect an exchange."""

    exchanger: TokenExchanger
    verifier: TokenVerifier
    keyring: Keyring
    keystore: FileKeyStore
    policy: WasmPolicyEngine
    fetcher: FakeFetcher
    clock: FakeClock
    idp_a: TestIdp
    idp_b: TestIdp
    issuers: dict[str, TrustedIssuer] = field(default_factory=dict)

    def request(self, subject_token: str, **overrides: Any) -> ExchangeRequest:
        """A validated request with sensible defaults (CRM audience, crm.read)."""
        fields: dict[str, Any] = {
            "subject_token": subject_token,
            "subject_token_type": TOKEN_TYPE_ID_TOKEN,
            "requested_token_type": TOKEN_TYPE_ID_JAG,
            "audience": CRM_AUDIENCE,
            "resources": [],
            "scopes": ["crm.read"],
            "actor_token": "",
            "actor_token_type": "",
            "context": {},
            "requested_lifetime_seconds": 0,
        }
        caller = overrides.pop("caller", Caller())
        limits = overrides.pop("limits", request_limits())
        fields.update(overrides)
        return build_request(ExchangeParams(**fields), caller, limits)


def build_harness(
    keys_dir: Path,
    *,
    policies: Path = POLICIES,
    clock: FakeClock | None = None,
    instruments: ExchangeInstruments | None = None,
) -> Harness:
    clock = clock or FakeClock()
    idp_a = TestIdp(IDP_A)
    idp_b = TestIdp(IDP_B, rsa_key="idp_b_rsa.pem", ec_key="idp_b_ec.pem")
    fetcher = FakeFetcher({f"{IDP_A}/jwks": idp_a.jwks(), f"{IDP_B}/jwks": idp_b.jwks()})
    issuers = {
        cfg.issuer: TrustedIssuer(
            config=cfg,
            jwks=JwksCache(
                cfg.issuer, fetcher, clock, jwks_uri=cfg.jwks_uri, min_refetch_interval=30
            ),
        )
        for cfg in issuer_configs()
    }
    verifier = TokenVerifier(
        issuers,
        clock,
        own_issuer=SEKISHO_ISSUER,
        leeway_seconds=30,
        max_token_bytes=16384,
        max_act_depth=max_act_depth(),
    )
    keystore = FileKeyStore(keys_dir)
    if not keystore.exists():
        keystore.init("ES256", int(clock.now()))
    keyring = Keyring(keystore)
    keyring.load()
    policy = loaded_engine(policies, Settings().policy.query)
    minter = TokenMinter(keyring, clock, issuer=SEKISHO_ISSUER, max_lifetime_seconds=300)
    exchanger = TokenExchanger(
        verifier,
        policy,
        minter,
        clock,
        AuditLog(),
        instruments=instruments,
        limits=request_limits(),
    )
    return Harness(
        exchanger=exchanger,
        verifier=verifier,
        keyring=keyring,
        keystore=keystore,
        policy=policy,
        fetcher=fetcher,
        clock=clock,
        idp_a=idp_a,
        idp_b=idp_b,
        issuers=issuers,
    )
