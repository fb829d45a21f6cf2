"""The load-time self-test both engines run: a sample input no sane policy allows must yield a
well-typed deny, so "allow everything" and "forgot the default decision" never start serving.
"""

from typing import Any

from sekisho.errors import PolicyLoadError
from sekisho.models import ExchangeRequest, VerifiedToken
from sekisho.policy.decision import InvalidDecisionError, parse_decision
from sekisho.policy.input import build_input


def self_test_input() -> dict[str, Any]:
    """A sample input that no sane policy allows (an audience nobody registered, no groups, no
    caller), built as every exchange's input is (policy/input.py), so it has every member the
    policies and schemas/input.json expect. A new document per call: a caller may change it."""
    request = ExchangeRequest(
        subject_token="",
        subject_token_type="",
        requested_token_type="",
        audience="https://self-test.invalid/unregistered",
    )
    subject = VerifiedToken(
        issuer="https://self-test.invalid", subject="self-test", token_type="", expires_at=0
    )
    return dict(build_input(request, subject, None, now=0))


def check_self_test(raw: Any) -> None:
    """Accept the policy's answer to self_test_input() only if it is a well-typed deny.

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
