"""Property test of JWKS parsing (a hostile or broken IdP's document): any JSON value gives a
dict of usable public keys, or FetchError; nothing else escapes into the refresh task."""

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sekisho.verify.fetcher import FetchError
from sekisho.verify.jwk_set import MAX_KEYS, PublicJwk, parse_jwks

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=12,
)
b64ish = st.sampled_from(["AQAB", "", "AA", "_-_-", "not base64!", "A" * 400]) | json_values
jwk_members = {
    "kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "RSA-bogus"]) | json_values,
    "kid": st.sampled_from(["k1", "k2", ""]) | json_values,
    "use": st.sampled_from(["sig", "enc"]) | json_values,
    "alg": st.sampled_from(["RS256", "ES256", "EdDSA", "none", "HS256"]) | json_values,
    "crv": st.sampled_from(["P-256", "P-384", "Ed25519", "secp256k1"]) | json_values,
    "n": b64ish,
    "e": b64ish,
    "x": b64ish,
    "y": b64ish,
    "d": b64ish,
    "k": b64ish,
}
jwks_documents = st.one_of(
    st.fixed_dictionaries(
        {"keys": st.lists(st.fixed_dictionaries({}, optional=jwk_members), max_size=4)}
    ),
    st.fixed_dictionaries({}, optional={"keys": json_values}),
    json_values,
)


@given(document=jwks_documents)
def test_any_jwks_document_parses_to_public_keys_or_fetch_error(document: Any) -> None:
    try:
        keys = parse_jwks(document)
    except FetchError:
        return
    assert len(keys) <= MAX_KEYS
    for kid, key in keys.items():
        assert isinstance(key, PublicJwk) and key.kid == kid
        assert key.kty in {"RSA", "EC", "OKP"}
        assert not hasattr(key.key, "private_bytes")  # never a private key
