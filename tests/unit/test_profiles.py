"""The token-profile table (sekisho/profiles.py) is what minting, inbound refusal, the gateway's
routes, RFC 8414 metadata and sekisho.verify all read (docs/architecture.md §4)."""

import pytest
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN, TOKEN_TYPE_ID_JAG
from sekisho.gateway.routes import PROFILE_TOKEN_TYPES
from sekisho.http.app import authorization_server_metadata
from sekisho.profiles import ACCESS_TOKEN, BY_NAME, ID_JAG, MINTED_TYPS, PROFILES, profile_for
from sekisho.verify.tokens import TYP_BY_PROFILE

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


def test_every_reader_derives_from_the_table() -> None:
    assert {p.name: p.token_type_urn for p in PROFILES} == PROFILE_TOKEN_TYPES
    assert {p.name: p.typ for p in PROFILES} == TYP_BY_PROFILE
    metadata = authorization_server_metadata("https://sekisho.example", ["ES256"])
    supported = metadata["identity_chaining_requested_token_types_supported"]
    assert supported == [p.token_type_urn for p in PROFILES]


def test_an_unknown_token_type_has_no_profile() -> None:
    with pytest.raises(KeyError):
        profile_for("urn:ietf:params:oauth:token-type:saml2")
