"""An in-memory KmsClient with real cryptography, for unit tests of the KMS backends.

Behaves like AWS KMS where Sekisho depends on it: Sign takes a digest (MessageType=DIGEST) and
returns DER for ECDSA, RSASSA-PSS uses a salt as long as the hash (what KMS does and JWS PS256
requires), CreateAlias refuses a taken name, Decrypt checks the encryption context, disabled
keys refuse to sign. Failures are injected per operation with `fail`.
"""

import hashlib
import itertools
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sekisho.signing.kms_client import KmsAlias, KmsAliasExistsError, KmsError


@dataclass
class FakeKey:
    key_id: str
    spec: str
    usage: str
    tags: dict[str, str]
    private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None
    secret: bytes = b""
    enabled: bool = True


@dataclass
class FakeKms:
    """KmsClient protocol, in memory. `calls` counts requests per operation."""

    keys: dict[str, FakeKey] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    failures: dict[str, list[KmsError]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    def fail(self, operation: str, *errors: KmsError) -> None:
        """The next len(errors) calls of `operation` raise these errors, in order."""
        self.failures.setdefault(operation, []).extend(errors)

    def _enter(self, operation: str) -> None:
        with self.lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1
            queued = self.failures.get(operation)
            if queued:
                raise queued.pop(0)

    def _key(self, key_id: str, operation: str) -> FakeKey:
        key_id = self.aliases.get(key_id, key_id)
        if key_id not in self.keys:
            raise KmsError(operation, "NotFoundException", f"{key_id} not found", retryable=False)
        return self.keys[key_id]

    def create_symmetric_key(self) -> str:
        key_id = f"sym-{next(self.ids)}"
        secret = hashlib.sha256(key_id.encode()).digest()
        self.keys[key_id] = FakeKey(
            key_id, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", {}, None, secret
        )
        return key_id

    def create_key(
        self, key_spec: str, usage: str, tags: Mapping[str, str], description: str
    ) -> str:
        self._enter("CreateKey")
        private: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
        if key_spec == "ECC_NIST_P256":
            private = ec.generate_private_key(ec.SECP256R1())
        else:
            private = rsa.generate_private_key(65537, int(key_spec.removeprefix("RSA_")))
        key_id = f"key-{next(self.ids)}"
        self.keys[key_id] = FakeKey(key_id, key_spec, usage, dict(tags), private)
        return key_id

    def get_public_key(self, key_id: str) -> bytes:
        self._enter("GetPublicKey")
        key = self._key(key_id, "GetPublicKey")
        assert key.private is not None
        return key.private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, key_id: str, digest: bytes, algorithm: str) -> bytes:
        self._enter("Sign")
        key = self._key(key_id, "Sign")
        if not key.enabled:
            raise KmsError("Sign", "DisabledException", f"{key_id} is disabled", retryable=False)
        if len(digest) != 32:
            raise KmsError("Sign", "ValidationException", "digest length", retryable=False)
        prehashed = utils.Prehashed(hashes.SHA256())
        if isinstance(key.private, ec.EllipticCurvePrivateKey):
            return key.private.sign(digest, ec.ECDSA(prehashed))
        assert isinstance(key.private, rsa.RSAPrivateKey)
        if algorithm == "RSASSA_PSS_SHA_256":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            return key.private.sign(digest, pss, prehashed)
        return key.private.sign(digest, padding.PKCS1v15(), prehashed)

    def list_aliases(self) -> list[KmsAlias]:
        self._enter("ListAliases")
        return [KmsAlias(name, key_id) for name, key_id in sorted(self.aliases.items())]

    def create_alias(self, name: str, key_id: str) -> None:
        self._enter("CreateAlias")
        with self.lock:
            if name in self.aliases:
                raise KmsAliasExistsError(
                    "CreateAlias", "AlreadyExistsException", name, retryable=False
                )
            self.aliases[name] = self._key(key_id, "CreateAlias").key_id

    def delete_alias(self, name: str) -> None:
        self._enter("DeleteAlias")
        if self.aliases.pop(name, None) is None:
            raise KmsError("DeleteAlias", "NotFoundException", name, retryable=False)

    def list_tags(self, key_id: str) -> dict[str, str]:
        self._enter("ListResourceTags")
        return dict(self._key(key_id, "ListResourceTags").tags)

    def tag(self, key_id: str, tags: Mapping[str, str]) -> None:
        self._enter("TagResource")
        self._key(key_id, "TagResource").tags.update(tags)

    def untag(self, key_id: str, keys: list[str]) -> None:
        self._enter("UntagResource")
        for name in keys:
            self._key(key_id, "UntagResource").tags.pop(name, None)

    def disable_key(self, key_id: str) -> None:
        self._enter("DisableKey")
        self._key(key_id, "DisableKey").enabled = False

    def encrypt(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        # AES-GCM with the encryption context as associated data, like KMS.
        self._enter("Encrypt")
        key = self._key(key_id, "Encrypt")
        nonce = os.urandom(12)
        return nonce + AESGCM(key.secret).encrypt(nonce, plaintext, _aad(key, context))

    def decrypt(self, key_id: str, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        self._enter("Decrypt")
        key = self._key(key_id, "Decrypt")
        try:
            return AESGCM(key.secret).decrypt(ciphertext[:12], ciphertext[12:], _aad(key, context))
        except InvalidTag as exc:
            raise KmsError("Decrypt", "InvalidCiphertextException", "", retryable=False) from exc


def _aad(key: FakeKey, context: Mapping[str, str]) -> bytes:
    return json.dumps({"key": key.key_id, "context": dict(context)}, sort_keys=True).encode()


def throttled() -> KmsError:
    return KmsError("Sign", "ThrottlingException", "Rate exceeded", retryable=True)
