"""File keystore: PKCS#8 PEM private keys (0600) plus keyring.json with each key's state.

Writes are atomic (temp file + fsync + rename) and serialised by an exclusive lock file, so two
CLI invocations cannot interleave and a crash leaves either the old or the new state.
"""

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sekisho.errors import KeyStoreError
from sekisho.signing.keyring import KeySet
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.material import (
    generate_private_key,
    private_key_from_pem,
    private_key_to_pem,
    public_jwk,
    thumbprint,
)
from sekisho.signing.signer import LocalSigner, Signer

KEYRING_FILE = "keyring.json"
FORMAT_VERSION = 1


class FileKeyStore:
    """Keys in a local directory (the embedded default backend)."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory

    @property
    def directory(self) -> Path:
        return self._dir

    def exists(self) -> bool:
        return (self._dir / KEYRING_FILE).exists()

    def records(self) -> list[KeyRecord]:
        """Raises: KeyStoreError when keyring.json is missing or corrupt."""
        path = self._dir / KEYRING_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise KeyStoreError(f"no keystore at {self._dir} (run `sekisho keys init`)") from exc
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{path} is unreadable or not JSON: {exc}") from exc
        version = raw.get("version") if isinstance(raw, dict) else None
        if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT_VERSION:
            raise KeyStoreError(f"{path} has an unknown format (expected version {FORMAT_VERSION})")
        keys = raw.get("keys")
        if not isinstance(keys, list):
            raise KeyStoreError(f"{path}: 'keys' must be a list")
        try:
            records = [KeyRecord.from_json(item) for item in keys]
        except KeyStoreError as exc:
            raise KeyStoreError(f"{path}: {exc}") from exc
        kids = [r.kid for r in records]
        if len(set(kids)) != len(kids):
            raise KeyStoreError(f"{path}: a kid appears more than once")
        if sum(r.state is KeyState.ACTIVE for r in records) > 1:
            raise KeyStoreError(f"{path}: more than one key is active")
        return records

    def load(self) -> KeySet:
        """Read every published key once into a signer. Raises: KeyStoreError."""
        records = tuple(self.records())
        signers: dict[str, Signer] = {}
        for record in records:
            if record.published:
                signers[record.kid] = self._load_signer(record)
        return KeySet(records=records, signers=signers)

    def init(self, alg: str, now: int) -> list[KeyRecord]:
        """Create an active key and a next key. Raises: KeyStoreError if keys already exist."""
        with self._locked():
            if self.exists():
                raise KeyStoreError(f"a keystore already exists at {self._dir}")
            active = self._create_key(alg, KeyState.ACTIVE, now)
            upcoming = self._create_key(alg, KeyState.NEXT, now)
            self._write_records([active, upcoming])
            return [active, upcoming]

    def _load_signer(self, record: KeyRecord) -> Signer:
        path = self._dir / f"{record.kid}.pem"
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise KeyStoreError(f"cannot read private key for kid {record.kid}") from exc
        key = private_key_from_pem(pem, record.alg)
        if thumbprint(public_jwk(key.public_key())) != record.kid:
            raise KeyStoreError(f"private key file for kid {record.kid} holds a different key")
        return LocalSigner(record.kid, record.alg, key)

    def _create_key(self, alg: str, state: KeyState, now: int) -> KeyRecord:
        key = generate_private_key(alg)
        kid = thumbprint(public_jwk(key.public_key()))
        _write_atomic(self._dir / f"{kid}.pem", private_key_to_pem(key), mode=0o600)
        activated = now if state is KeyState.ACTIVE else 0
        return KeyRecord(kid=kid, alg=alg, state=state, created_at=now, activated_at=activated)

    def _write_records(self, records: list[KeyRecord]) -> None:
        body = {"version": FORMAT_VERSION, "keys": [r.to_json() for r in records]}
        data = json.dumps(body, indent=2).encode() + b"\n"
        _write_atomic(self._dir / KEYRING_FILE, data, mode=0o644)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._dir / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write a fresh temp file with `mode`, fsync it, rename it over `path`, fsync the folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
