"""Signing keys for minting tests: the fixture ES256 key behind a Keyring, no files written."""

from dataclasses import dataclass, field

from sekisho.signing.keyring import Keyring, KeySet
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.material import private_key_from_pem, public_jwk, thumbprint
from sekisho.signing.signer import LocalSigner, Signer

from tests.fakes.idp import KEYS_DIR

FIXTURE_PEM = KEYS_DIR / "sekisho_es256.pem"


def fixture_signer() -> LocalSigner:
    """A LocalSigner over tests/fakes/keys/sekisho_es256.pem, kid = its RFC 7638 thumbprint."""
    key = private_key_from_pem(FIXTURE_PEM.read_bytes(), "ES256")
    return LocalSigner(thumbprint(public_jwk(key.public_key())), "ES256", key)


@dataclass
class StaticKeyStore:
    """A KeyStore holding one active key, with the retirement time a test chooses."""

    signer: Signer = field(default_factory=fixture_signer)
    retire_after: int = 0

    def load(self) -> KeySet:
        record = KeyRecord(
            kid=self.signer.kid,
            alg=self.signer.alg,
            state=KeyState.ACTIVE,
            created_at=1_700_000_000,
            activated_at=1_700_000_000,
            retire_after=self.retire_after,
        )
        return KeySet(records=(record,), signers={record.kid: self.signer})


def keyring_over(store: StaticKeyStore) -> Keyring:
    keyring = Keyring(store)
    keyring.load()
    return keyring
