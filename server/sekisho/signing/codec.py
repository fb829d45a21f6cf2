"""How a file keystore stores each private key: PKCS#8 PEM, optionally passphrase-encrypted.

A codec turns a key object into the bytes of `<kid><suffix>` and back. The KMS-wrapped codec
lives in wrapped.py; all of them bind the file to its kid (the file store re-checks the RFC 7638
thumbprint after opening), so a swapped file is refused.
"""

from typing import Protocol

from cryptography.hazmat.primitives import serialization

from sekisho.errors import KeyStoreError
from sekisho.signing.material import PrivateKey, private_key_from_pem

_ENCRYPTED_PEM = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"


class PrivateKeyCodec(Protocol):
    """Seals private keys into file bytes and opens them again."""

    @property
    def suffix(self) -> str:
        """File name suffix after the kid, e.g. `.pem`."""
        ...

    def seal(self, key: PrivateKey, kid: str) -> bytes: ...

    def open(self, data: bytes, kid: str, alg: str) -> PrivateKey:
        """Raises: KeyStoreError when the bytes cannot be opened or hold the wrong key type."""
        ...


class PemCodec:
    """PKCS#8 PEM; encrypted with the best scheme cryptography offers when the keystore is
    configured with a passphrase (`[keys] passphrase_env` names the environment variable).

    Once encryption is configured, a key file must match it: an unencrypted PEM is refused
    (one planted next to keyring.json would otherwise be loaded and signed with without a word;
    docs/security.md issue 19 class 4), a missing passphrase is an error, never a silent
    unencrypted write. `sekisho keys reseal` encrypts an existing keystore (`lenient` opens
    both kinds for that one command).
    """

    suffix = ".pem"

    def __init__(
        self, passphrase: bytes | None = None, passphrase_env: str = "", *, lenient: bool = False
    ) -> None:
        self._passphrase = passphrase or None
        self._env = passphrase_env
        self._encrypt = bool(passphrase_env) or self._passphrase is not None
        self._lenient = lenient

    def lenient(self) -> "PemCodec":
        """The same codec, opening unencrypted PEMs too (for `keys reseal` only)."""
        return PemCodec(self._passphrase, self._env, lenient=True)

    def seal(self, key: PrivateKey, kid: str) -> bytes:
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if self._encrypt:
            encryption = serialization.BestAvailableEncryption(self._required(kid, "encrypt"))
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def open(self, data: bytes, kid: str, alg: str) -> PrivateKey:
        if not data.lstrip().startswith(_ENCRYPTED_PEM):
            if self._encrypt and not self._lenient:
                raise KeyStoreError(
                    f"the private key for kid {kid} is not encrypted but keys.passphrase_env is "
                    "set: refusing a key that does not match the configured protection (encrypt "
                    "the keystore with `sekisho keys reseal`)"
                )
            return private_key_from_pem(data, alg)
        passphrase = self._required(kid, "decrypt")
        try:
            return private_key_from_pem(data, alg, password=passphrase)
        except KeyStoreError as exc:
            raise KeyStoreError(
                f"cannot decrypt the private key for kid {kid} (wrong passphrase?)"
            ) from exc

    def _required(self, kid: str, doing: str) -> bytes:
        if self._passphrase is None:
            if not self._env:  # an encrypted key file, and no passphrase configured at all
                raise KeyStoreError(
                    f"cannot {doing} the private key for kid {kid}: it is encrypted and "
                    "keys.passphrase_env is not set; set it to the name of the environment "
                    "variable that holds the keystore's passphrase"
                )
            raise KeyStoreError(
                f"cannot {doing} the private key for kid {kid}: the passphrase (${self._env}, "
                "from keys.passphrase_env) is not set"
            )
        return self._passphrase
