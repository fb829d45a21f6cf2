"""moto's standalone server (the `moto_server` entry point of moto[server]) for the KMS tests,
with one gap in moto's KMS emulation closed first.

moto 5.2 parses Sign's MessageType and ignores it: a DIGEST request has its digest hashed again,
so the signature verifies against sha256(digest) instead of the digest, and RSASSA-PSS uses the
maximum salt length where KMS uses the hash length (getmoto/moto#10202, open). Real KMS, per
https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html, skips hashing for DIGEST and
requires the message length to match the algorithm's hash. Sekisho signs with DIGEST only, so
the contract tests would fail against unpatched moto for moto's reason, not ours.

This module patches moto's KMS Sign to do what AWS does for DIGEST (RAW requests are untouched)
and then runs `moto.server.main` with the given arguments. When moto implements DIGEST itself
(its backend's sign() takes a message_type), the patch is skipped.

Usage: python tests/moto_kms_server.py -H 127.0.0.1 -p PORT
"""

import base64
import inspect
import json
import sys
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from moto.kms.exceptions import ValidationException
from moto.kms.models import KmsBackend
from moto.kms.responses import KmsResponse
from moto.server import main as moto_main

_HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


def _digest_signature(private: Any, algorithm: str, digest: bytes) -> bytes:
    hash_cls = _HASHES[algorithm.rsplit("_", 1)[1]]
    if len(digest) != hash_cls.digest_size:
        raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
    prehashed = utils.Prehashed(hash_cls())
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return private.sign(digest, ec.ECDSA(prehashed))
    assert isinstance(private, rsa.RSAPrivateKey)
    if algorithm.startswith("RSASSA_PSS"):
        pss = padding.PSS(mgf=padding.MGF1(hash_cls()), salt_length=hash_cls.digest_size)
        return private.sign(digest, pss, prehashed)
    return private.sign(digest, padding.PKCS1v15(), prehashed)


def _patch_sign() -> None:
    if "message_type" in inspect.signature(KmsBackend.sign).parameters:
        return  # moto honours MessageType itself
    original = KmsResponse.sign

    def sign(self: KmsResponse) -> str:
        if self._get_param("MessageType") != "DIGEST":
            return original(self)
        key_id = self._get_param("KeyId")
        algorithm = self._get_param("SigningAlgorithm")
        self._validate_key_id(key_id)
        backend = self.kms_backend
        if key_id.startswith("alias/"):
            key_id = backend.get_key_id_from_alias(key_id)
        key = backend.describe_key(key_id)
        if key.key_usage != "SIGN_VERIFY" or algorithm not in key.signing_algorithms:
            raise ValidationException(f"key {key.id} cannot sign with {algorithm}")
        signature = _digest_signature(
            key.private_key.private_key, algorithm, self._get_param("Message")
        )
        return json.dumps(
            {
                "KeyId": key.arn,
                "Signature": base64.b64encode(signature).decode(),
                "SigningAlgorithm": algorithm,
            }
        )

    KmsResponse.sign = sign  # type: ignore[method-assign]


if __name__ == "__main__":
    _patch_sign()
    moto_main(sys.argv[1:])
