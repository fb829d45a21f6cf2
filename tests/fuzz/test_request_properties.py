"""Property tests of validation.build_request, the validator every transport shares: any input
is either refused with a typed InvalidRequestError or becomes a request that satisfies every
invariant the rest of the pipeline relies on. Nothing else ever escapes."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sekisho.codepoints import is_scope_token
from sekisho.constants import (
    SUPPORTED_ACTOR_TOKEN_TYPES,
    SUPPORTED_SUBJECT_TOKEN_TYPES,
)
from sekisho.errors import InvalidRequestError
from sekisho.models import Caller
from sekisho.profiles import BY_TOKEN_TYPE
from sekisho.validation import ExchangeParams, build_request

from tests.bounds import request_limits

LIMITS = request_limits(max_scopes=8, max_resources=4, max_value_length=64, max_token_bytes=512)

token_types = st.sampled_from(
    sorted(SUPPORTED_SUBJECT_TOKEN_TYPES | BY_TOKEN_TYPE.keys() | {""})
) | st.text(max_size=40)
uris = st.sampled_from(
    ["https://crm.example.com/mcp", "urn:example:res", "http://[", "https://x#frag", "rel/path"]
) | st.text(max_size=70)
scopes = st.sampled_from(["crm.read", "crm write", "crm\x00", "", "é"]) | st.text(max_size=70)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=40,
)


@given(
    subject_token=st.just("a.b.c") | st.text(max_size=600),
    subject_token_type=token_types,
    requested_token_type=token_types,
    audience=st.text(max_size=70),
    resources=st.lists(uris, max_size=6),
    scopes=st.lists(scopes, max_size=10),
    actor_token=st.just("") | st.text(max_size=20),
    actor_token_type=st.sampled_from([*sorted(SUPPORTED_ACTOR_TOKEN_TYPES), "", "x"]),
    context=st.dictionaries(st.text(max_size=5), json_values, max_size=6),
    lifetime=st.integers(min_value=-(2**63), max_value=2**63),
)
def test_build_request_refuses_with_a_typed_error_or_upholds_every_invariant(
    *,
    subject_token: str,
    subject_token_type: str,
    requested_token_type: str,
    audience: str,
    resources: list[str],
    scopes: list[str],
    actor_token: str,
    actor_token_type: str,
    context: dict[str, Any],
    lifetime: int,
) -> None:
    try:
        params = ExchangeParams(
            subject_token=subject_token,
            subject_token_type=subject_token_type,
            requested_token_type=requested_token_type,
            audience=audience,
            resources=resources,
            scopes=scopes,
            actor_token=actor_token,
            actor_token_type=actor_token_type,
            context=context,
            requested_lifetime_seconds=lifetime,
        )
        request = build_request(params, Caller(), LIMITS)
    except InvalidRequestError as exc:
        assert len(subject_token) < 8 or subject_token not in exc.public_message  # noqa: PT017
        return
    assert request.subject_token and len(request.subject_token.encode()) <= 512
    assert request.subject_token_type in SUPPORTED_SUBJECT_TOKEN_TYPES
    assert request.requested_token_type in BY_TOKEN_TYPE
    assert request.audience and len(request.audience) <= 64
    assert len(request.scopes) <= 8 and len(set(request.scopes)) == len(request.scopes)
    assert all(is_scope_token(s) and " " not in s for s in request.scopes)
    assert len(request.resources) <= 4 and len(set(request.resources)) == len(request.resources)
    assert all("#" not in r and ":" in r for r in request.resources)
    assert bool(request.actor_token) == bool(request.actor_token_type)
    assert 0 <= request.requested_lifetime_seconds <= LIMITS.max_lifetime_seconds
