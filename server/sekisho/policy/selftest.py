"""The load-time self-test both engines run: a sample input no sane policy allows must yield a
well-typed deny, so "allow everything" and "forgot the default decision" never start serving.
"""

from typing import Any

from sekisho.errors import PolicyLoadError
from sekisho.policy.decision import InvalidDecisionError, parse_decision

# Sample input that no sane policy allows: an audience nobody registered, no groups, no caller.
SELF_TEST_INPUT: dict[str, Any] = {
    "subject": {
        "iss": "https://self-test.invalid",
        "sub": "self-test",
        "client_id": "",
        "tenant": "",
        "email": "",
        "groups": [],
        "acr": "",
        "amr": [],
        "auth_time": 0,
        "claims": {},
    },
    "actor": None,
    "caller": {"id": "", "spiffe_id": "", "authenticated_by": "none"},
    "request": {
        "audience": "https://self-test.invalid/unregistered",
        "resources": [],
        "scopes": [],
        "requested_token_type": "",
        "subject_token_type": "",
        "lifetime_seconds": 0,
        "context": {},
    },
    "now": 0,
}


def check_self_test(raw: Any) -> None:
    """Accept the policy's answer to SELF_TEST_INPUT only if it is a well-typed deny.

    Raises: PolicyLoadError saying what is wrong.
    """
    if raw is None:
        raise PolicyLoadError(
            "policy self-test: the query is undefined; define a default decision "
            '(default decision := {"allow": false})'
        )
    try:
        decision = parse_decision(raw)
    except InvalidDecisionError as exc:
        raise PolicyLoadError(f"policy self-test: ill-typed decision: {exc}") from exc
    if decision.allow:
        raise PolicyLoadError("policy self-test: an unregistered audience was allowed")
