"""The token-profile table (sekisho/profiles.py) is what minting, inbound refusal, the gateway's
routes, RFC 8414 metadata and sekisho.verify all read (docs/architecture.md §4)."""

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.http.app import authorization_server_metadata
from sekisho.models import Caller
from sekisho.profiles import ACCESS_TOKEN, BY_NAME, ID_JAG, MINTED_TYPS, PROFILES, profile_for
from sekisho.validation import ExchangeParams, build_request

from tests.bounds import request_limits

# The contract, written out: (name, URN, typ, token_type, aud is the resource, one aud, single use)
CONTRACT = [
    ("id-jag", TOKEN_TYPE_ID_JAG, "oauth-id-jag+jwt", "N_A", False, True, True),
    ("access_token", TOKEN_TYPE_ACCESS_TOKEN, "at+jwt", "Bearer", True, False, False),
]


@pytest.mark.parametrize("row", CONTRACT, ids=[row[0] for row in CONTRACT])
def test_each_profile_matches_the_contract(row: tuple[object, ...]) -> None:
    name, urn, *_ = row
    profile = profile_for(str(urn))
    assert profile is BY_NAME[str(name)]
    assert (
        profile.name,
        profile.token_type_urn,
        profile.typ,
        profile.token_type,
        profile.aud_is_resource,
        profile.single_audience,
        profile.single_use,
    ) == row


def test_the_profiles_are_never_confusable() -> None:
    assert len({p.typ for p in PROFILES}) == len({p.token_type_urn for p in PROFILES}) == 2
    assert {ID_JAG.typ, ACCESS_TOKEN.typ} == MINTED_TYPS


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_every_profile_is_a_requested_token_type_validation_accepts(profile: object) -> None:
    """Validation reads the table: a profile added there is requested and minted, not refused
    by a second list of token types."""
    urn = profile.token_type_urn  # type: ignore[attr-defined]
    params = ExchangeParams(
        subject_token="t", audience="https://as.example.com", requested_token_type=urn
    )
    assert build_request(params, Caller(), request_limits()).requested_token_type == urn


def test_metadata_lists_every_profile() -> None:
    metadata = authorization_server_metadata("https://sekisho.example", ["ES256"])
    supported = metadata["identity_chaining_requested_token_types_supported"]
    assert supported == [p.token_type_urn for p in PROFILES]


def test_an_unknown_token_type_has_no_profile() -> None:
    with pytest.raises(KeyError):
        profile_for("urn:ietf:params:oauth:token-type:saml2")
