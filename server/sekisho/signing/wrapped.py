"""`kms-wrapped` keys: generated locally, stored only as KMS ciphertext, opened once per load.

Each `<kid>.kms` file is the CiphertextBlob of KMS Encrypt over the key's PKCS#8 DER, with the
encryption context {"sekisho:kid": kid}. KMS refuses to decrypt a blob under another context, so
a file copied onto another kid's name does not open; without kms:Decrypt on the wrapping key the
files are useless. Signing then happens in process: one KMS call per key load, none per token.
"""

from sekisho.errors import KeyStoreError
from sekisho.signing.kms_client import KmsClient, KmsError
from sekisho.signing.material import PrivateKey, private_key_from_der, private_key_to_der

CONTEXT_KEY = "sekisho:kid"


class KmsWrappedCodec:
    """PrivateKeyCodec that encrypts with KMS Encrypt and opens with KMS Decrypt."""

    suffix = ".kms"

    def __init__(self, client: KmsClient, wrapping_key_id: str) -> None:
        self._client = client
        self._key_id = wrapping_key_id

    def seal(self, key: PrivateKey, kid: str) -> bytes:
        """Raises: KeyStoreError when KMS refuses or cannot be reached."""
        try:
            return self._client.encrypt(self._key_id, private_key_to_der(key), {CONTEXT_KEY: kid})
        except KmsError as exc:
            raise KeyStoreError(f"cannot wrap the private key for kid {kid}: {exc}") from exc

    def open(self, data: bytes, kid: str, alg: str) -> PrivateKey:
        try:
            der = self._client.decrypt(self._key_id, data, {CONTEXT_KEY: kid})
        except KmsError as exc:
            raise KeyStoreError(f"cannot unwrap the private key for kid {kid}: {exc}") from exc
        return private_key_from_der(der, alg)
