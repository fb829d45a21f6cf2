"""Keystores written by hand, in the states `sekisho keys` reaches step by step (retiring,
retired, revoked), so keyring and filestore tests need not replay a rotation to get there."""

import json
from collections.abc import Sequence
from pathlib import Path

from sekisho.signing.filestore import FORMAT_VERSION, KEYRING_FILE
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.material import PrivateKey, private_key_to_pem, public_jwk, thumbprint

CREATED_AT = 1_700_000_000

# One keystore entry: the key's state, its JWS alg and the private key.
KeyEntry = tuple[KeyState, str, PrivateKey]


def kid_of(key: PrivateKey) -> str:
    """The kid Sekisho gives a key: its RFC 7638 thumbprint."""
    return thumbprint(public_jwk(key.public_key()))


def write_keystore(directory: Path, entries: Sequence[KeyEntry]) -> list[KeyRecord]:
    """Write one PEM per entry (0600, as `sekisho keys` does) and a keyring.json listing them in
    the given order."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    records = []
    for state, alg, key in entries:
        kid = kid_of(key)
        pem = directory / f"{kid}.pem"
        pem.write_bytes(private_key_to_pem(key))
        pem.chmod(0o600)
        activated = 0 if state is KeyState.NEXT else CREATED_AT
        records.append(
            KeyRecord(kid=kid, alg=alg, state=state, created_at=CREATED_AT, activated_at=activated)
        )
    write_keyring_json(directory, [r.to_json() for r in records])
    return records


def write_keyring_json(directory: Path, keys: object, version: object = FORMAT_VERSION) -> None:
    """keyring.json with any `keys` and `version` values, well-formed or not."""
    body = {"version": version, "keys": keys}
    (directory / KEYRING_FILE).write_text(json.dumps(body), encoding="utf-8")
