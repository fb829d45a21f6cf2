"""The narrow slice of AWS KMS Sekisho uses, behind a protocol so tests can fake it.

`Boto3KmsClient` is the only place that knows boto3: it translates every botocore failure into
`KmsError` with a `retryable` flag (throttling, KMS-side 5xx, timeouts, connection failures),
so callers decide about retries without knowing botocore's exception zoo.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from sekisho.errors import ConfigError

if TYPE_CHECKING:
    from mypy_boto3_kms.client import KMSClient

# Error codes that mean "try again": request-rate throttling (the account-wide quota) and
# KMS-side trouble (https://docs.aws.amazon.com/kms/latest/APIReference/CommonErrors.html).
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "KMSInternalException",
        "DependencyTimeoutException",
        "KeyUnavailableException",
        "ServiceUnavailableException",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


class KmsError(Exception):
    """A KMS request failed; `code` is the AWS error code (or the botocore class name)."""

    def __init__(self, operation: str, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(f"KMS {operation} failed: {code}: {message}")
        self.operation = operation
        self.code = code
        self.retryable = retryable


class KmsAliasExistsError(KmsError):
    """CreateAlias found the alias taken (KMS's only atomic create-if-absent)."""


@dataclass(frozen=True, slots=True)
class KmsAlias:
    name: str
    key_id: str


class KmsClient(Protocol):
    """What the KMS backends need from AWS KMS. Every method raises KmsError."""

    def create_key(
        self, key_spec: str, usage: str, tags: Mapping[str, str], description: str
    ) -> str:
        """Create a key; returns its key id."""
        ...

    def get_public_key(self, key_id: str) -> bytes:
        """DER SubjectPublicKeyInfo."""
        ...

    def sign(self, key_id: str, digest: bytes, algorithm: str) -> bytes:
        """Sign a digest (MessageType=DIGEST); ECDSA signatures come back DER-encoded."""
        ...

    def list_aliases(self) -> list[KmsAlias]:
        """Every alias in the account and Region that targets a key."""
        ...

    def create_alias(self, name: str, key_id: str) -> None:
        """Raises: KmsAliasExistsError when the name is taken."""
        ...

    def delete_alias(self, name: str) -> None: ...

    def list_tags(self, key_id: str) -> dict[str, str]: ...

    def tag(self, key_id: str, tags: Mapping[str, str]) -> None: ...

    def untag(self, key_id: str, keys: list[str]) -> None: ...

    def disable_key(self, key_id: str) -> None: ...

    def encrypt(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes: ...

    def decrypt(self, key_id: str, ciphertext: bytes, context: Mapping[str, str]) -> bytes: ...


class Boto3KmsClient:
    """KmsClient over a boto3 KMS client (real AWS, or any endpoint_url such as moto)."""

    def __init__(self, client: "KMSClient") -> None:
        self._kms = client

    def create_key(
        self, key_spec: str, usage: str, tags: Mapping[str, str], description: str
    ) -> str:
        tag_list = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
        response = self._call(
            "CreateKey",
            self._kms.create_key,
            KeySpec=key_spec,
            KeyUsage=usage,
            Tags=tag_list,
            Description=description,
        )
        return str(response["KeyMetadata"]["KeyId"])

    def get_public_key(self, key_id: str) -> bytes:
        return bytes(
            self._call("GetPublicKey", self._kms.get_public_key, KeyId=key_id)["PublicKey"]
        )

    def sign(self, key_id: str, digest: bytes, algorithm: str) -> bytes:
        response = self._call(
            "Sign",
            self._kms.sign,
            KeyId=key_id,
            Message=digest,
            MessageType="DIGEST",
            SigningAlgorithm=algorithm,
        )
        return bytes(response["Signature"])

    def list_aliases(self) -> list[KmsAlias]:
        aliases: list[KmsAlias] = []
        kwargs: dict[str, Any] = {"Limit": 100}
        while True:
            page = self._call("ListAliases", self._kms.list_aliases, **kwargs)
            aliases += [
                KmsAlias(a["AliasName"], a["TargetKeyId"])
                for a in page.get("Aliases", [])
                if a.get("TargetKeyId")
            ]
            if not page.get("Truncated"):
                return aliases
            kwargs["Marker"] = page["NextMarker"]

    def create_alias(self, name: str, key_id: str) -> None:
        self._call("CreateAlias", self._kms.create_alias, AliasName=name, TargetKeyId=key_id)

    def delete_alias(self, name: str) -> None:
        self._call("DeleteAlias", self._kms.delete_alias, AliasName=name)

    def list_tags(self, key_id: str) -> dict[str, str]:
        tags: dict[str, str] = {}
        kwargs: dict[str, Any] = {"KeyId": key_id}
        while True:
            page = self._call("ListResourceTags", self._kms.list_resource_tags, **kwargs)
            tags.update({t["TagKey"]: t["TagValue"] for t in page.get("Tags", [])})
            if not page.get("Truncated"):
                return tags
            kwargs["Marker"] = page["NextMarker"]

    def tag(self, key_id: str, tags: Mapping[str, str]) -> None:
        tag_list = [{"TagKey": k, "TagValue": v} for k, v in tags.items()]
        self._call("TagResource", self._kms.tag_resource, KeyId=key_id, Tags=tag_list)

    def untag(self, key_id: str, keys: list[str]) -> None:
        self._call("UntagResource", self._kms.untag_resource, KeyId=key_id, TagKeys=keys)

    def disable_key(self, key_id: str) -> None:
        self._call("DisableKey", self._kms.disable_key, KeyId=key_id)

    def encrypt(self, key_id: str, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        response = self._call(
            "Encrypt",
            self._kms.encrypt,
            KeyId=key_id,
            Plaintext=plaintext,
            EncryptionContext=dict(context),
        )
        return bytes(response["CiphertextBlob"])

    def decrypt(self, key_id: str, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        response = self._call(
            "Decrypt",
            self._kms.decrypt,
            KeyId=key_id,
            CiphertextBlob=ciphertext,
            EncryptionContext=dict(context),
        )
        return bytes(response["Plaintext"])

    @staticmethod
    def _call(operation: str, method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except ClientError as exc:
            raise _client_error(operation, exc) from exc
        except (HTTPClientError, BotoConnectionError) as exc:  # refused, reset, timed out
            raise KmsError(operation, type(exc).__name__, str(exc), retryable=True) from exc
        except BotoCoreError as exc:  # no credentials, bad parameters, …
            raise KmsError(operation, type(exc).__name__, str(exc), retryable=False) from exc


def _client_error(operation: str, exc: ClientError) -> KmsError:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    if code == "AlreadyExistsException":
        return KmsAliasExistsError(operation, code, message, retryable=False)
    retryable = code in RETRYABLE_CODES or status >= 500
    return KmsError(operation, code, message, retryable=retryable)


def create_kms_client(region: str, endpoint_url: str, timeout_seconds: float) -> Boto3KmsClient:
    """A boto3 KMS client with short timeouts and botocore's own retries off (Sekisho retries
    with jittered backoff inside the request deadline, see kms.py).

    Raises: ConfigError when boto3 cannot build a client (no Region).
    """
    # Imported here: boto3 and botocore.config add ~23 MiB RSS and ~0.2 s of startup to every
    # worker, which the file keystore never needs.
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        retries={"total_max_attempts": 1, "mode": "standard"},
    )
    try:
        client = boto3.client(
            "kms", region_name=region or None, endpoint_url=endpoint_url or None, config=config
        )
    except BotoCoreError as exc:  # e.g. NoRegionError
        raise ConfigError(
            f"config key 'keys.kms_region': cannot create a KMS client: {exc} "
            "(set kms_region, or AWS_REGION or AWS_DEFAULT_REGION in the environment)"
        ) from exc
    return Boto3KmsClient(client)
