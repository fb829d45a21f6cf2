"""File keystore: one private key file per kid (0600) plus keyring.json with each key's state.

Writes are atomic (temp file + fsync + rename) and every mutation runs under an exclusive lock
on `.lock` and re-reads keyring.json inside it, so two CLI invocations (or a CLI and a replica
rotating on its own) cannot interleave, and a crash leaves either the old or the new state.
How private keys are stored is the codec's business: PEM, passphrase-encrypted PEM, or KMS
ciphertext (`kms-wrapped`).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from sekisho.errors import KeyStoreError, KeyStoreMissingError
from sekisho.filelocks import flock_before
from sekisho.signing.codec import PemCodec, PrivateKeyCodec
from sekisho.signing.filemodes import read_private_key
from sekisho.signing.keyring import KeySet, collect
from sekisho.signing.keys import KeyRecord, KeyState
from sekisho.signing.material import generate_private_key, public_jwk, thumbprint
from sekisho.signing.signer import LocalSigner

KEYRING_FILE = "keyring.json"
LOCK_FILE = ".lock"
# _write_atomic's temporaries are `.<target name>.<random>.tmp`: named by these, not by
# mkstemp's own random part (its alphabet and length are CPython's, not a promise).
_TEMPORARY_PREFIX = "."
_TEMPORARY_SUFFIX = ".tmp"


def is_scratch_file(name: str) -> bool:
    """A file of the keystore's folder that holds no key state: the lock, or a write in progress
    (renamed over its target once complete, a change the folder's watch sees on its own)."""
    return name == LOCK_FILE or (
        name.startswith(_TEMPORARY_PREFIX) and name.endswith(_TEMPORARY_SUFFIX)
    )


def is_keystore_file(directory: Path, suffix: str, path: Path) -> bool:
    """Whether `path` is a file a keystore in `directory` whose key files end in `suffix`
    writes or replaces: keyring.json, the lock, a key file, a write in progress. Compared as
    realpath names them: the keys folder keeps its symlinks (config/paths.py), so one file may
    be spelled two ways."""
    real = Path(os.path.realpath(path))
    if real.parent != Path(os.path.realpath(directory)):
        return False
    name = real.name
    return name == KEYRING_FILE or name.endswith(suffix) or is_scratch_file(name)


FORMAT_VERSION = 1


class KeyStoreLockedError(KeyStoreError):
    """Another process holds the keystore lock for longer than we were willing to wait."""


class FileKeyStore:
    """Keys in a local directory (the embedded default backend, and `kms-wrapped`)."""

    def __init__(
        self,
        directory: Path,
        codec: PrivateKeyCodec | None = None,
        *,
        keep_private_keys: bool = False,
        allow_loose_key_files: bool = False,
    ) -> None:
        self._dir = directory
        self._codec: PrivateKeyCodec = codec or PemCodec()
        # [keys] private_key_retention: retired and revoked keys' files are deleted at commit
        # unless "keep" (a key that can no longer sign should not be stealable either).
        self._keep_private_keys = keep_private_keys
        # [keys] allow_loose_key_files: accept key files others could read or replace (filemodes).
        self._allow_loose = allow_loose_key_files
        # kid → (digest of the key file, signer): a reload opens only keys whose file changed,
        # so kms-wrapped keys cost one KMS Decrypt per key, not one per reload.
        self._opened: dict[str, tuple[bytes, LocalSigner]] = {}

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
            raise KeyStoreMissingError(f"no keystore at {self._dir}") from exc
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: deep nesting
            raise KeyStoreError(f"{path} is unreadable or not JSON: {type(exc).__name__}") from exc
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
        """Read every published key once into a signer.

        Raises: KeyLoadError (with the keys that did load) when a key file fails, KeyStoreError
        when keyring.json does.
        """
        return collect(tuple(self.records()), self._load_signer)

    def init(self, alg: str, now: int) -> list[KeyRecord]:
        """Create an active and a next key. Raises: KeyStoreError if keys already exist."""
        with self.locked():
            if self.exists():
                raise KeyStoreError(f"a keystore already exists at {self._dir}")
            active = self.create_key(alg, now)
            active = KeyRecord(
                kid=active.kid, alg=alg, state=KeyState.ACTIVE, created_at=now, activated_at=now
            )
            upcoming = self.create_key(alg, now)
            self.commit([], [active, upcoming])
            return [active, upcoming]

    def create_key(self, alg: str, now: int) -> KeyRecord:
        """Generate a key and write its file; it exists for readers once commit() lists it.

        Raises: KeyStoreError for an unsupported alg or a codec failure.
        """
        key = generate_private_key(alg)
        kid = thumbprint(public_jwk(key.public_key()))
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_atomic(self._key_path(kid), self._codec.seal(key, kid), mode=0o600)
        return KeyRecord(kid=kid, alg=alg, state=KeyState.NEXT, created_at=now)

    def commit(self, before: Sequence[KeyRecord], after: Sequence[KeyRecord]) -> None:
        """Replace keyring.json with `after` in one rename (call under locked())."""
        del before  # one atomic file: no ordering of individual changes needed
        self._write_records(list(after))
        if not self._keep_private_keys:  # after the records: a crash leaves a file, not a hole
            for record in after:
                if not record.published:
                    self._key_path(record.kid).unlink(missing_ok=True)
                    self._opened.pop(record.kid, None)

    @contextlib.contextmanager
    def locked(self, wait_seconds: float = 30.0) -> Iterator[None]:
        """Hold the keystore's exclusive lock. Raises: KeyStoreLockedError after wait_seconds."""
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self._dir / LOCK_FILE, "a+b") as handle:
            _flock(handle.fileno(), wait_seconds, self._dir)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def reseal(self, resealed: Callable[[KeyRecord], None] = lambda record: None) -> list[str]:
        """Rewrite every key file with the configured protection (encrypt plain PEMs once a
        passphrase is configured); the kids rewritten. `resealed` is called under the lock
        after each file is rewritten (its audit line). Raises: KeyStoreError, and what
        `resealed` raises (the files before it stay rewritten, those after it are not)."""
        opener = self._codec.lenient() if isinstance(self._codec, PemCodec) else self._codec
        rewritten = []
        with self.locked():
            for record in self.records():
                path = self._key_path(record.kid)
                if not path.exists():
                    continue
                key = opener.open(path.read_bytes(), record.kid, record.alg)
                if thumbprint(public_jwk(key.public_key())) != record.kid:
                    raise KeyStoreError(f"{path} holds a different key than kid {record.kid}")
                _write_atomic(path, self._codec.seal(key, record.kid), mode=0o600)
                rewritten.append(record.kid)
                resealed(record)
        return rewritten

    def writes(self, path: Path) -> bool:
        """Whether `path` is a file this keystore writes or replaces (is_keystore_file)."""
        return is_keystore_file(self._dir, self._codec.suffix, path)

    def files(self, records: Sequence[KeyRecord]) -> list[Path]:
        """keyring.json and the key file of every published record (what a replica reads)."""
        return [self._dir / KEYRING_FILE, *(self._key_path(r.kid) for r in records if r.published)]

    def _key_path(self, kid: str) -> Path:
        return self._dir / f"{kid}{self._codec.suffix}"

    def _load_signer(self, record: KeyRecord) -> LocalSigner:
        path = self._key_path(record.kid)
        try:
            sealed = read_private_key(path, allow_loose=self._allow_loose)
        except OSError as exc:
            raise KeyStoreError(f"cannot read private key for kid {record.kid}") from exc
        digest = hashlib.sha256(sealed).digest()
        cached = self._opened.get(record.kid)
        if cached is not None and cached[0] == digest and cached[1].alg == record.alg:
            return cached[1]
        try:
            key = self._codec.open(sealed, record.kid, record.alg)
        except KeyStoreError as exc:  # name the file: "a PEM is unreadable" alone is no lead
            raise KeyStoreError(f"{path}: {exc}") from exc
        if thumbprint(public_jwk(key.public_key())) != record.kid:
            raise KeyStoreError(f"private key file for kid {record.kid} holds a different key")
        signer = LocalSigner(record.kid, record.alg, key)
        self._opened[record.kid] = (digest, signer)
        return signer

    def _write_records(self, records: list[KeyRecord]) -> None:
        body = {"version": FORMAT_VERSION, "keys": [r.to_json() for r in records]}
        data = json.dumps(body, indent=2).encode() + b"\n"
        _write_atomic(self._dir / KEYRING_FILE, data, mode=0o644)


def _flock(fd: int, wait_seconds: float, directory: Path) -> None:
    if not flock_before(fd, time.monotonic() + wait_seconds):
        raise KeyStoreLockedError(
            f"the keystore at {directory} is locked by another sekisho process"
        )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write a fresh temp file with `mode`, fsync it, rename it over `path`, fsync the folder."""
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f"{_TEMPORARY_PREFIX}{path.name}.", suffix=_TEMPORARY_SUFFIX
    )
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
