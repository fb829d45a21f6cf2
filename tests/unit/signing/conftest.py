"""Generated keys for the signing tests, made once per session (RSA-3072 generation is slow)."""

import pytest
from sekisho.constants import SIGNING_ALGORITHMS
from sekisho.signing.material import PrivateKey, generate_private_key


@pytest.fixture(scope="session")
def keys_by_alg() -> dict[str, PrivateKey]:
    """One fresh key per signing algorithm."""
    return {alg: generate_private_key(alg) for alg in sorted(SIGNING_ALGORITHMS)}


@pytest.fixture(scope="session")
def es256_keys() -> list[PrivateKey]:
    """Five distinct P-256 keys for keystores holding several keys."""
    return [generate_private_key("ES256") for _ in range(5)]
