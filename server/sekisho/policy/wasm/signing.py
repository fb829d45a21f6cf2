"""OPA bundle signatures (OPA docs, "Bundles: Signing"; bundle/verify.go, bundle/hash.go).

`.signatures.json` holds exactly one JWT, signed with the configured key, whose payload lists
every other file of the bundle with its digest: `{"files": [{"name", "hash", "algorithm"}],
"scope"?}`. A structured file (.json, .yaml, .yml, and `.manifest`) is hashed in a canonical form
(keys sorted, no whitespace, numbers as written, Go's string escaping) so reformatting does not
break the signature; anything else is hashed as bytes. A bundle is accepted only if the JWT
verifies, its scope matches, and the listed files are exactly the bundle's files with the
listed digests.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from sekisho.constants import MAX_HEADER_SEGMENT
from sekisho.errors import PolicyLoadError

SIGNATURES = "/.signatures.json"
_HASHES: dict[str, Callable[[], Any]] = {
    "MD5": hashlib.md5,
    "SHA-1": hashlib.sha1,
    "SHA-224": hashlib.sha224,
    "SHA-256": hashlib.sha256,
    "SHA-384": hashlib.sha384,
    "SHA-512": hashlib.sha512,
    "SHA-512-224": lambda: hashlib.new("sha512_224"),
    "SHA-512-256": lambda: hashlib.new("sha512_256"),
}
_STRUCTURED = (".json", ".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class BundleVerifier:
    """The key (PEM public key, or an HMAC secret for HS*), its algorithm and expected scope."""

    key: str
    algorithm: str  # [policy] bundle_verification_alg
    scope: str = ""

    @classmethod
    def from_file(
        cls,
        path: Path,
        algorithm: str | None,
        scope: str = "",
        *,
        given_as: str = "[policy] bundle_verification_key",
    ) -> "BundleVerifier":
        """`algorithm` None: the one the key's type implies (`key_algorithm`). `given_as` is
        what the user gave the file as, which every refusal names ("signing key", as every
        other `--signing-key` refusal says, when `sekisho policy build` checks its own HMAC
        signature).

        Raises: PolicyLoadError when the key file cannot be read, is not text, or is not a key
        for `algorithm` (at start: otherwise every bundle would fail later, outside the
        PolicyLoadError handling of the poller, with the replica silently never ready), or
        when no algorithm is given and the key's type does not imply one (an HMAC secret)."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyLoadError(f"{given_as} {path}: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise PolicyLoadError(_not_text(f"{given_as} {path}", algorithm)) from exc
        if _load_private(text.encode()) is not None:
            # Whoever holds it decides what every replica grants: only CI should.
            raise PolicyLoadError(
                f"{given_as} {path} is a private key: give replicas its public key "
                "(openssl pkey -in FILE -pubout); only CI signs"
            )
        if algorithm is None:
            algorithm = _implied_algorithm(
                path, _load_public(text), "set [policy] bundle_verification_alg"
            )
        verifier = cls(text, algorithm, scope)
        try:
            jwt.get_algorithm_by_name(algorithm).prepare_key(verifier._key())
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise PolicyLoadError(f"{given_as} {path} is not a {algorithm} key: {exc}") from exc
        return verifier

    def verify(self, files: dict[str, bytes]) -> None:
        """Raises: PolicyLoadError naming what does not verify."""
        listed = self._signed_files(files)
        present = {name.lstrip("/") for name in files if name != SIGNATURES}
        if set(listed) != present:
            extra, missing = sorted(present - set(listed)), sorted(set(listed) - present)
            raise PolicyLoadError(
                f"bundle signature: files not signed {extra}, signed but missing {missing}"
            )
        for name, entry in listed.items():
            if file_digest(name, files["/" + name], entry.get("algorithm", "")) != entry.get(
                "hash"
            ):
                raise PolicyLoadError(f"bundle signature: {name}: digest mismatch")

    def _signed_files(self, files: dict[str, bytes]) -> dict[str, dict[str, Any]]:
        if SIGNATURES not in files:
            raise PolicyLoadError("bundle is not signed (no .signatures.json)")
        try:
            tokens = json.loads(files[SIGNATURES])["signatures"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PolicyLoadError(f"bundle .signatures.json is malformed: {exc}") from exc
        if not isinstance(tokens, list) or len(tokens) != 1 or not isinstance(tokens[0], str):
            raise PolicyLoadError(".signatures.json: expected exactly one JWT")
        if len(tokens[0].partition(".")[0]) > MAX_HEADER_SEGMENT:
            raise PolicyLoadError(
                f"bundle signature: JWT header longer than {MAX_HEADER_SEGMENT} characters"
            )
        try:
            payload = jwt.decode(
                tokens[0], self._key(), algorithms=[self.algorithm], options={"verify_aud": False}
            )
        except jwt.PyJWTError as exc:
            raise PolicyLoadError(f"bundle signature does not verify: {exc}") from exc
        if payload.get("scope", "") != self.scope:
            raise PolicyLoadError("bundle signature: scope mismatch")
        entries = payload.get("files")
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise PolicyLoadError("bundle signature: payload has no file list")
        return {str(entry.get("name", "")): entry for entry in entries}

    def _key(self) -> Any:
        if self.algorithm.startswith("HS"):
            return self.key.encode()
        return self.key


def key_algorithms(key: object) -> tuple[str, list[str]] | None:
    """What an asymmetric key (private or public) is, and the JWS algorithms it can sign or
    verify, the one its type implies first (RS256 for RSA, as `opa build` defaults to); None
    for anything else."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "an RSA key", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        curves = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        return f"an EC {key.curve.name} key", [curves.get(key.curve.name, "")]
    if isinstance(
        key,
        ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey
        | ed25519.Ed25519PublicKey
        | ed448.Ed448PublicKey,
    ):
        return "an EdDSA key", ["EdDSA"]
    return None


def _load_private(data: bytes) -> object:
    """The unencrypted PEM private key in `data`, or None."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return None


def _load_public(text: str) -> object:
    """The PEM public key in `text`, or None."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return load_pem_public_key(text.encode())
    except (ValueError, TypeError):
        return None


def _not_text(named: str, algorithm: str | None) -> str:
    """The refusal of a key file that is not UTF-8 (a binary HMAC secret, a DER key): PyJWT
    takes an HMAC secret as text, so a replica could never verify with such a secret."""
    if algorithm is not None and algorithm.startswith("HS"):
        return (
            f"{named} is not text: an HMAC secret must be UTF-8 text, the same file on CI and "
            "every replica (make one with `openssl rand -base64 32 > FILE`)"
        )
    return (
        f"{named} is not text: give a PEM public key (from DER: openssl pkey -pubin -inform DER "
        "-in FILE), or for HS* an HMAC secret that is text (`openssl rand -base64 32 > FILE`)"
    )


def _implied_algorithm(path: Path, key: object, remedy: str) -> str:
    """The algorithm `key`'s type implies. Raises: PolicyLoadError naming `remedy`."""
    found = key_algorithms(key)
    if found is None or not found[1][0]:
        raise PolicyLoadError(
            f"cannot tell the signature algorithm from {path} (not a PEM RSA, EC P-256/384/521 "
            f"or Ed25519 key; an HMAC secret?): {remedy}"
        )
    return found[1][0]


def signing_algorithm(path: Path, algorithm: str | None) -> str:
    """The algorithm `sekisho policy build` signs with: `algorithm` when given, after checking
    that the key can sign it (refused before opa tries: its answer is "jwsbb.Sign: invalid key
    type *jwk.ecdsaPrivateKey. *rsa.PrivateKey is required …"); else the one the key's type
    implies (ES256 for the EC P-256 key the CI example makes). A file that is not an
    unencrypted PEM private key (an HMAC secret for HS*) is left to opa when `algorithm` is
    given.

    Raises: PolicyLoadError naming the key's type and the algorithm that fits it, or asking
    for --signing-alg when the key's type implies none; the file cannot be read; an HMAC
    secret is not text (replicas could not verify with it)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyLoadError(f"signing key {path}: {exc.strerror}") from exc
    key = _load_private(data)
    if key is None and algorithm is not None and algorithm.startswith("HS"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Before opa signs with it: opa takes any bytes, replicas refuse the secret.
            raise PolicyLoadError(_not_text(f"signing key {path}", algorithm)) from exc
    if key is None and _load_public(data.decode("utf-8", "replace")) is not None:
        # Not an HMAC secret (the hint below): a PEM key is never one, replicas refuse it as such.
        raise PolicyLoadError(
            f"signing key {path} is a public key: sign with the private key of its pair "
            "(replicas verify with this one: [policy] bundle_verification_key)"
        )
    if algorithm is None:
        return _implied_algorithm(path, key, "pass --signing-alg (HS256 for an HMAC secret)")
    found = key_algorithms(key)
    if found is None:
        return algorithm
    what, fits = found
    if algorithm not in fits:
        shown = " or ".join(f for f in fits if f) or "another algorithm"
        raise PolicyLoadError(
            f"signing key {path} is {what}, which cannot sign {algorithm}: pass --signing-alg "
            f"{shown}, or leave it out to use the key's (and set [policy] "
            "bundle_verification_alg to the same on the replicas, or leave it unset)"
        )
    return algorithm


def file_digest(name: str, data: bytes, algorithm: Any) -> str:
    """The hex digest OPA signs for one bundle file; `algorithm` as the signed payload lists
    it, of any JSON type. Raises: PolicyLoadError."""
    factory = _HASHES.get(algorithm) if isinstance(algorithm, str) else None
    try:
        digest = factory() if factory is not None else None
    except ValueError:  # hashlib.new() of a digest this OpenSSL build lacks
        digest = None
    if digest is None:
        shown = repr(algorithm)[:64]  # the signed payload's value: any JSON, of any size
        raise PolicyLoadError(f"bundle signature: {name}: unsupported hash algorithm {shown}")
    if name.endswith(_STRUCTURED) or name.endswith(".manifest"):
        try:
            value = json.loads(data, parse_float=_Raw, parse_int=_Raw, parse_constant=_Raw)
            text = canonical(value).encode()
        except UnicodeEncodeError as exc:  # valid JSON; OPA reads the half pair as U+FFFD
            raise PolicyLoadError(
                f"bundle signature: {name}: a string holds a lone surrogate escape"
            ) from exc
        except (ValueError, RecursionError) as exc:  # canonical() recurses per nesting level
            raise PolicyLoadError(f"bundle signature: {name}: not JSON: {exc}") from exc
        digest.update(text)
    else:
        digest.update(data)
    return str(digest.hexdigest())


class _Raw(str):
    """A JSON number kept as written (OPA unmarshals with UseNumber)."""


def canonical(value: Any) -> str:
    """bundle/hash.go walk(): sorted keys, no whitespace, Go's JSON primitives."""
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: kv[0].encode())
        return "{" + ",".join(f"{go_json_string(k)}:{canonical(v)}" for k, v in items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(canonical(v) for v in value) + "]"
    if isinstance(value, _Raw):
        return str.__str__(value)
    if isinstance(value, str):
        return go_json_string(value)
    return json.dumps(value)  # true, false, null


def go_json_string(text: str) -> str:
    """encoding/json with SetEscapeHTML(false)."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif char < " " or char in "\u2028\u2029":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
