"""Each kind of difference between a live and a candidate decision is reported, and only it
(policy/difference.py: the comparison behind shadow evaluation and impact replay)."""

from dataclasses import replace

import pytest
from sekisho.models import Decision
from sekisho.policy.difference import KINDS, decision_document, differences

GRANT = Decision(
    allow=True,
    scopes=("crm.read",),
    resources=("https://crm.example.com/mcp",),
    ttl_seconds=300,
    client_id="agent",
    claims={"email": "alice@example.com"},
)
DENY = Decision(allow=False, error="access_denied", reason="denied")
STEP_UP = Decision(
    allow=False, error="insufficient_user_authentication", acr_values="urn:mfa", max_age=900
)
CONSENT = Decision(allow=False, error="consent_required", authorization_url="https://as/consent")

CASES = [
    ("same grant", GRANT, GRANT, ["crm.read"], ()),
    ("allow to deny", GRANT, DENY, ["crm.read"], ("allow",)),
    ("deny to allow", DENY, GRANT, [], ("allow",)),
    ("scope gained", GRANT, replace(GRANT, scopes=("crm.read", "crm.write")), [], ("scopes",)),
    (
        "scope granted but not requested is no change",
        GRANT,
        replace(GRANT, scopes=("crm.read", "crm.write")),
        ["crm.read"],
        (),
    ),
    ("resources", GRANT, replace(GRANT, resources=()), [], ("resources",)),
    ("ttl", GRANT, replace(GRANT, ttl_seconds=60), [], ("ttl",)),
    ("ttl left to the default", GRANT, replace(GRANT, ttl_seconds=None), [], ("ttl",)),
    ("claims", GRANT, replace(GRANT, claims={}), [], ("claims",)),
    ("client id", GRANT, replace(GRANT, client_id="other"), [], ("client_id",)),
    ("step-up demanded", GRANT, STEP_UP, [], ("allow", "step_up")),
    ("step-up no longer demanded", STEP_UP, DENY, [], ("step_up",)),
    ("stricter step-up", STEP_UP, replace(STEP_UP, max_age=300), [], ("step_up",)),
    ("consent demanded", DENY, CONSENT, [], ("consent",)),
    (
        "consent elsewhere",
        CONSENT,
        replace(CONSENT, authorization_url="https://x"),
        [],
        ("consent",),
    ),
    ("another denial", DENY, replace(DENY, error="invalid_target"), [], ("denial",)),
    ("a different reason only", DENY, replace(DENY, reason="other words"), [], ()),
    ("candidate failed", GRANT, None, [], ("error",)),
]


@pytest.mark.parametrize(
    ("live", "candidate", "requested", "expected"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_each_kind_of_difference_is_reported(
    live: Decision, candidate: Decision | None, requested: list[str], expected: tuple[str, ...]
) -> None:
    assert differences(live, candidate, requested) == expected


def test_the_table_covers_every_kind() -> None:
    reported = {kind for case in CASES for kind in case[4]}
    assert reported == set(KINDS)


def test_the_record_form_has_every_contract_field() -> None:
    document = decision_document(GRANT)
    assert document["ttl_seconds"] == 300
    assert document["claims"] == {"email": "alice@example.com"}
    assert "ttl_seconds" not in decision_document(DENY)  # unset: the configured maximum
    assert set(decision_document(STEP_UP)) == set(document) - {"ttl_seconds"}
