"""Builds the configured keystore backend and the KeyManager over it (composition root for keys,
shared by `sekisho serve` and `sekisho keys`).

- file: keyring.json + one PEM per key in [keys] dir (optionally passphrase-encrypted)
- kms-wrapped: the same files, each private key a KMS ciphertext (one Decrypt per key load)
- kms: every key an asymmetric KMS key, its state in KMS aliases (replicas poll)
"""

import os
from pathlib import Path

from sekisho.clock import Clock
from sekisho.config import Settings
from sekisho.errors import ConfigError
from sekisho.signing.audit import KeyAuditLog
from sekisho.signing.codec import PemCodec, PrivateKeyCodec
from sekisho.signing.filestore import FileKeyStore, is_keystore_file
from sekisho.signing.kms import RetryPolicy
from sekisho.signing.kms_client import KmsClient, create_kms_client
from sekisho.signing.kmsstore import KmsKeyStore
from sekisho.signing.lifecycle import Timing
from sekisho.signing.manager import KeyManager, ManagedKeyStore
from sekisho.signing.wrapped import KmsWrappedCodec


def build_kms_client(settings: Settings) -> KmsClient:
    """A KMS client in [keys] kms_region, else $AWS_REGION, else boto3's own default.

    botocore reads only AWS_DEFAULT_REGION and the profile's region; AWS_REGION is the variable
    the other AWS SDKs, the AWS CLI v2, Lambda and ECS use, and the one the docs name.
    """
    keys = settings.keys
    region = keys.kms_region or os.environ.get("AWS_REGION", "")
    return create_kms_client(region, keys.kms_endpoint_url, keys.kms_timeout_seconds)


def build_keystore(
    settings: Settings, clock: Clock, kms_client: KmsClient | None = None
) -> ManagedKeyStore:
    """The [keys] backend. Raises: ConfigError when a setting it needs is missing."""
    keys = settings.keys
    if keys.backend == "kms":
        return KmsKeyStore(
            kms_client or build_kms_client(settings),
            keys.kms_alias_prefix,
            clock=clock,
            retry=RetryPolicy(deadline_seconds=keys.kms_timeout_seconds),
        )
    codec: PrivateKeyCodec
    if keys.backend == "kms-wrapped":
        codec = KmsWrappedCodec(kms_client or build_kms_client(settings), keys.kms_wrapping_key_id)
    else:
        codec = PemCodec(_passphrase(settings), keys.passphrase_env)
    return FileKeyStore(
        keys.dir,
        codec,
        keep_private_keys=keys.private_key_retention == "keep",
        allow_loose_key_files=keys.allow_loose_key_files,
    )


def refuse_keystore_file(settings: Settings, path: Path, key: str) -> None:
    """A log named by config key `key` must not be a file the [keys] file keystore (file,
    kms-wrapped) writes: a line appended to keyring.json made it unreadable, and nothing signed
    (red team sessions 17, `keys.audit_log`, and 18, `status_list.audit_log` and
    `decision_log.path`). Checked without opening the keystore: a revoke operator may hold
    neither its passphrase nor KMS access. Called by `sekisho revoke` (commands/revoke.py,
    `status_list.audit_log`) and at start by build_decision_log (decision_observers.py,
    `decision_log.path`); `keys.audit_log` is checked against the opened keystore
    (build_key_manager).

    Raises: ConfigError naming `key`."""
    keys = settings.keys
    if keys.backend == "kms":
        return
    suffix = KmsWrappedCodec.suffix if keys.backend == "kms-wrapped" else PemCodec.suffix
    if is_keystore_file(keys.dir, suffix, path):
        raise ConfigError(
            f"config key '{key}': {path} is a file the keystore writes (keys.dir); "
            "name another file"
        )


def timing(settings: Settings) -> Timing:
    """The lifecycle rules' durations, from the same config the service runs with."""
    return Timing(
        jwks_max_age=settings.tokens.jwks_max_age_seconds,
        max_token_lifetime=settings.tokens.max_lifetime_seconds,
        leeway=settings.trust.leeway_seconds,
        rotation_period=settings.keys.rotation_period,
    )


def build_key_manager(settings: Settings, store: ManagedKeyStore, clock: Clock) -> KeyManager:
    """Raises: ConfigError when `keys.audit_log` names a file of the keystore itself."""
    audit_log = settings.keys.audit_log_path
    if isinstance(store, FileKeyStore) and store.writes(audit_log):
        # Appended to keyring.json, the audit line made it unreadable: nothing signed, and the
        # command had printed its change (red team session 17).
        raise ConfigError(
            f"config key 'keys.audit_log': {audit_log} is a file the keystore writes; "
            "name another file (by default audit.log in keys.dir)"
        )
    return KeyManager(
        store,
        KeyAuditLog(audit_log),
        timing(settings),
        clock,
        settings.keys.algorithm,
    )


def _passphrase(settings: Settings) -> bytes | None:
    name = settings.keys.passphrase_env
    if not name:
        return None
    value = os.environ.get(name, "")
    if not value:
        return None  # the codec refuses to write or open an encrypted key without it
    if len(value) < 12:
        raise ConfigError(
            f"config key 'keys.passphrase_env': ${name} must be at least 12 characters"
        )
    return value.encode()
