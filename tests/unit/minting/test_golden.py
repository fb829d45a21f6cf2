"""Golden tokens: the header and claims of one id-jag and one access token, and the JWKS that
verifies them, compared with tests/golden/*.json (docs/architecture.md §4).

ES256 signatures are randomised, so only header and claims are compared; the signature is
checked against the golden JWKS instead. After an intended change, regenerate with
SEKISHO_UPDATE_GOLDEN=1 and review the diff of tests/golden/ like code.
"""

import difflib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG, TOKEN_TYPE_ID_TOKEN
from sekisho.minting.minter import TokenMinter
from sekisho.models import Caller, Decision, ExchangeRequest, MintedToken, VerifiedToken

from tests.fakes.clock import FakeClock
from tests.unit.minting.signing_keys import StaticKeyStore, keyring_over

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
UPDATE = os.environ.get("SEKISHO_UPDATE_GOLDEN") == "1"

NOW = 1_800_000_000
JTI = "AAECAwQFBgcICQoLDA0ODw"  # base64url of bytes 0..15: the shape of a real 128-bit jti

REQUEST = ExchangeRequest(
    subject_token="inbound",
    subject_token_type=TOKEN_TYPE_ID_TOKEN,
    requested_token_type=TOKEN_TYPE_ID_JAG,
    audience="https://crm-as.example.com",
    resources=("https://crm.example.com/mcp",),
    scopes=("crm.read", "crm.write"),
    caller=Caller(
        id="agent-runtime", spiffe_id="spiffe://example.org/agent", authenticated_by="mtls"
    ),
)
SUBJECT = VerifiedToken(
    issuer="https://idp.example.com",
    subject="alice",
    token_type=TOKEN_TYPE_ID_TOKEN,
    expires_at=NOW + 3600,
    client_id="agent-app",
    tenant="acme",
    email="alice@example.com",
    groups=("sales",),
    acr="phr",
    amr=("pwd", "otp"),
    auth_time=NOW - 60,
    act={"sub": "mcp-gateway", "iss": "https://idp.example.com"},  # as the verifier reads it
)
DECISION = Decision(
    allow=True,
    scopes=("crm.read", "crm.write"),
    resources=("https://crm.example.com/mcp",),
    ttl_seconds=240,
    client_id="crm-client",
    claims={"crm_roles": ["viewer"]},
    decision_id="decision-1",
)


async def _mint(requested_token_type: str) -> MintedToken:
    minter = TokenMinter(
        keyring_over(StaticKeyStore()),
        FakeClock(NOW),
        issuer="https://sekisho.example.com",
        max_lifetime_seconds=300,
        jti_factory=lambda: JTI,
    )
    request = replace(REQUEST, requested_token_type=requested_token_type)
    return await minter.mint(request, SUBJECT, None, DECISION)


def _render(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def assert_golden(name: str, actual: Any) -> None:
    """Compare `actual` with tests/golden/`name`; print a unified diff on mismatch."""
    path = GOLDEN / name
    if UPDATE:
        path.write_text(_render(actual), encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if _render(actual) != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True),
            _render(actual).splitlines(keepends=True),
            fromfile=f"tests/golden/{name} (expected)",
            tofile="minted (actual)",
        )
        pytest.fail(
            f"{name} differs from the golden file "
            f"(SEKISHO_UPDATE_GOLDEN=1 rewrites it after an intended change):\n{''.join(diff)}",
            pytrace=False,
        )


def _jwks() -> dict[str, Any]:
    return json.loads(keyring_over(StaticKeyStore()).jwks_bytes)


@pytest.mark.parametrize(
    ("requested_token_type", "golden"),
    [
        pytest.param(TOKEN_TYPE_ID_JAG, "id_jag.json", id="id-jag"),
        pytest.param(TOKEN_TYPE_ACCESS_TOKEN, "access_token.json", id="access-token"),
    ],
)
async def test_minted_token_matches_golden(requested_token_type: str, golden: str) -> None:
    token = (await _mint(requested_token_type)).token
    # The signature is random (ES256), but it must verify against the published JWKS (which
    # test_jwks_matches_golden pins).
    jwk = jwt.PyJWKSet.from_dict(_jwks())[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(
        token,
        jwk,
        algorithms=["ES256"],
        options={"verify_aud": False, "verify_exp": False, "verify_iat": False},
    )
    assert_golden(golden, {"header": jwt.get_unverified_header(token), "claims": claims})


def test_jwks_matches_golden() -> None:
    assert_golden("jwks.json", _jwks())


async def test_two_profiles_are_not_confusable() -> None:
    # docs/architecture.md §4: typ keeps them apart; aud differs when a resource is named.
    id_jag = (await _mint(TOKEN_TYPE_ID_JAG)).token
    access = (await _mint(TOKEN_TYPE_ACCESS_TOKEN)).token
    assert jwt.get_unverified_header(id_jag)["typ"] != jwt.get_unverified_header(access)["typ"]
    options = {"verify_signature": False}
    assert jwt.decode(id_jag, options=options)["aud"] != jwt.decode(access, options=options)["aud"]


def test_golden_diff_names_the_changed_claim(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The failure message must show what changed, not just "not equal".
    monkeypatch.setattr(f"{__name__}.GOLDEN", tmp_path)
    monkeypatch.setattr(f"{__name__}.UPDATE", False)
    (tmp_path / "x.json").write_text(_render({"claims": {"scope": "crm.read"}}), encoding="utf-8")
    with pytest.raises(pytest.fail.Exception) as raised:
        assert_golden("x.json", {"claims": {"scope": "crm.admin"}})
    message = str(raised.value)
    assert '-    "scope": "crm.read"' in message
    assert '+    "scope": "crm.admin"' in message
