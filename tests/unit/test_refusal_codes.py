"""Refusals that share `access_denied` on the wire own a code each (errors.py): the audit line and
sekisho_refusals_total tell a revoked user, an actor not permitted by may_act, a caller with no
client id at the audience and a grant policy got wrong apart from a policy deny, while the
caller still learns nothing more than "denied"."""

from dataclasses import replace
from pathlib import Path

import pytest
from sekisho.delegation import check_actor
from sekisho.errors import AccessDeniedError, ServiceError
from sekisho.models import Decision, VerifiedToken
from sekisho.policy.outcome import denial, granted
from sekisho.status.filestore import FileStatusStore
from sekisho.status.models import Revocation, subject_key
from sekisho.status.revocations import RevocationGate

from tests.fakes.clock import FakeClock
from tests.harness import IDP_A
from tests.unit.minting.test_minter import DECISION, REQUEST, SUBJECT, _minter

NOW = 1_800_000_000
BOB = VerifiedToken(issuer=IDP_A, subject="bob", token_type="id_token", expires_at=NOW + 600)


def _same_wire(error: ServiceError, code: str) -> None:
    assert isinstance(error, AccessDeniedError)
    assert (error.reason, error.grpc_code, error.oauth_error) == (
        "access_denied", "PERMISSION_DENIED", "invalid_grant",
    )  # fmt: skip
    assert error.code == code


async def test_a_revoked_user_is_code_revoked(tmp_path: Path) -> None:
    store = FileStatusStore(tmp_path / "status.db")
    gate = RevocationGate(store, FakeClock(NOW), max_stale_seconds=2)
    store.revoke(NOW, Revocation("subject", subject_key(IDP_A, "bob"), "r", "sec", NOW))
    await gate.refresh()
    with pytest.raises(AccessDeniedError) as raised:
        gate.check(REQUEST, replace(SUBJECT, issuer=IDP_A, subject="bob"), None)
    _same_wire(raised.value, "revoked")
    assert raised.value.public_message == "the exchange was denied"  # nothing about why


def test_an_actor_not_named_by_may_act_is_code_actor_not_permitted() -> None:
    with pytest.raises(AccessDeniedError) as raised:
        check_actor(SUBJECT, BOB, DECISION)
    _same_wire(raised.value, "actor_not_permitted")


async def test_no_client_id_is_code_client_id_unknown() -> None:
    with pytest.raises(AccessDeniedError) as raised:
        await _minter().mint(
            REQUEST, replace(SUBJECT, client_id=""), None, replace(DECISION, client_id="")
        )
    _same_wire(raised.value, "client_id_unknown")


@pytest.mark.parametrize(
    "decision",
    [
        replace(DECISION, claims={"iss": "attacker"}),
        replace(DECISION, ttl_seconds=0),
    ],
    ids=["reserved-claim", "zero-lifetime"],
)
async def test_a_grant_that_cannot_be_minted_is_code_policy_grant_invalid(
    decision: Decision,
) -> None:
    with pytest.raises(AccessDeniedError) as raised:
        await _minter().mint(REQUEST, SUBJECT, None, decision)
    _same_wire(raised.value, "policy_grant_invalid")


def test_an_ill_formed_scope_is_code_policy_grant_invalid() -> None:
    with pytest.raises(AccessDeniedError) as raised:
        granted(replace(DECISION, scopes=("bad scope",)), REQUEST)
    _same_wire(raised.value, "policy_grant_invalid")


def test_a_policy_deny_is_still_code_access_denied() -> None:
    error = denial(Decision(allow=False, reason="not in sales"))
    _same_wire(error, "access_denied")
    assert error.public_message == "the exchange was denied by policy"
