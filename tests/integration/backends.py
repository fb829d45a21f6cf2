"""The three keystore backends, built exactly as `sekisho serve` and `sekisho keys` build them
(sekisho.keystores), with the KMS ones pointed at moto's server."""

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from sekisho.config import Settings
from sekisho.keystores import build_key_manager, build_keystore
from sekisho.signing.manager import KeyManager, ManagedKeyStore

from tests.fakes.clock import FakeClock

BACKENDS = ("file", "kms", "kms-wrapped")


def kms_client(endpoint: str) -> Any:
    return boto3.client("kms", endpoint_url=endpoint, region_name="us-east-1")


def wrapping_key(endpoint: str) -> str:
    """A fresh symmetric KMS key for kms-wrapped keystores."""
    return str(
        kms_client(endpoint).create_key(Description="sekisho test wrapping key")["KeyMetadata"][
            "KeyId"
        ]
    )


def keys_settings(
    backend: str, keys_dir: Path, endpoint: str, *, algorithm: str = "ES256", **keys: Any
) -> dict[str, Any]:
    """The [keys] table for `backend`; KMS backends get their own alias prefix / wrapping key,
    and a KMS deadline that is a hang guard (30 s, the most the config allows) unless the test
    passes its own: at the default 2 s, moto's answers at load ~12 (ListAliases in over 2 s,
    74f48e8) could fail a set-up or a signing that no test here times."""
    table: dict[str, Any] = {"backend": backend, "dir": str(keys_dir), "algorithm": algorithm}
    if backend != "file":
        table.update(kms_endpoint_url=endpoint, kms_region="us-east-1", kms_timeout_seconds=30.0)
    if backend == "kms":
        table["kms_alias_prefix"] = f"sekisho-test/{uuid.uuid4().hex[:12]}"
    if backend == "kms-wrapped":
        table["kms_wrapping_key_id"] = wrapping_key(endpoint)
    table.update(keys)
    return table


@dataclass
class Backend:
    """One configured backend; every store() is a fresh instance, like another process."""

    name: str
    settings: Settings
    clock: FakeClock

    def store(self) -> ManagedKeyStore:
        return build_keystore(self.settings, self.clock)

    def manager(self) -> KeyManager:
        return build_key_manager(self.settings, self.store(), self.clock)


def make_backend(
    name: str, tmp_path: Path, endpoint: str, clock: FakeClock, **keys: Any
) -> Backend:
    settings = Settings(
        keys=keys_settings(name, tmp_path / "keys", endpoint, **keys),
        tokens={"jwks_max_age_seconds": 300, "max_lifetime_seconds": 300},
    )
    return Backend(name=name, settings=settings, clock=clock)
