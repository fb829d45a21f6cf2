"""Signing with AWS KMS: every token signed by a key that never leaves KMS.

Sign requests carry SHA-256(signing input) with MessageType=DIGEST, so the token itself never
travels to KMS and the 4 KB RAW limit never applies. ECDSA answers in DER and is converted to JWS
R||S (der.py). Throttling and KMS-side errors are retried with full-jitter exponential backoff
inside a deadline, then surface as `temporarily_unavailable`; anything retrying cannot fix
(access denied, disabled key) is a `server_error`.

Quota: KMS asymmetric Sign requests share one account-wide, per-Region quota (ECC and RSA
separately; see docs/security-team.md). One Sign per minted token means callers must reuse
tokens until shortly before `exp` instead of exchanging per call.
"""

import asyncio
import hashlib
import logging
import random
from dataclasses import dataclass

from sekisho.backoff import Backoff
from sekisho.errors import ServerError, TemporarilyUnavailableError
from sekisho.signing.der import ECDSA_SIZES, SignatureFormatError, der_to_jose
from sekisho.signing.kms_client import KmsClient, KmsError
from sekisho.signing.material import PublicKey

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KmsKeyType:
    """How one JWS algorithm maps onto KMS (specs research §6)."""

    key_spec: str
    signing_algorithm: str


KMS_KEY_TYPES = {
    "ES256": KmsKeyType("ECC_NIST_P256", "ECDSA_SHA_256"),
    "PS256": KmsKeyType("RSA_3072", "RSASSA_PSS_SHA_256"),
    "RS256": KmsKeyType("RSA_3072", "RSASSA_PKCS1_V1_5_SHA_256"),
}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff for retryable KMS errors: full jitter, capped, all inside `deadline_seconds`."""

    deadline_seconds: float = 2.0
    base_delay: float = 0.05
    max_delay: float = 0.8

    def delay(self, attempt: int, rng: random.Random) -> float:
        return Backoff(self.base_delay, self.max_delay).jittered(attempt, rng)


class KmsSigner:
    """A Signer whose private key lives in KMS; the public key was fetched once at load."""

    def __init__(
        self,
        *,
        kid: str,
        alg: str,
        public_key: PublicKey,
        key_id: str,
        client: KmsClient,
        retry: RetryPolicy,
        rng: random.Random | None = None,
    ) -> None:
        self._kid = kid
        self._alg = alg
        self._public_key = public_key
        self._key_id = key_id
        self._client = client
        self._retry = retry
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._algorithm = KMS_KEY_TYPES[alg].signing_algorithm

    @property
    def kid(self) -> str:
        return self._kid

    @property
    def alg(self) -> str:
        return self._alg

    @property
    def public_key(self) -> PublicKey:
        return self._public_key

    @property
    def key_id(self) -> str:
        return self._key_id

    async def sign(self, signing_input: bytes) -> bytes:
        """Raises: TemporarilyUnavailableError (retries exhausted), ServerError (refused)."""
        digest = hashlib.sha256(signing_input).digest()
        signature = await self._sign_with_retries(digest)
        if self._alg not in ECDSA_SIZES:
            return signature  # RSA signatures are the same bytes in KMS and JWS
        try:
            return der_to_jose(signature, ECDSA_SIZES[self._alg])
        except SignatureFormatError as exc:
            raise ServerError("token signing failed", log_detail=f"kid {self._kid}: {exc}") from exc

    async def _sign_with_retries(self, digest: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.deadline_seconds
        attempt = 0
        last_error = ""  # what the retries were for, named even when the deadline cuts a call
        while True:
            remaining = deadline - loop.time()
            try:
                return await asyncio.wait_for(self._sign_once(digest), timeout=remaining)
            except TimeoutError as exc:
                cause = (
                    f"deadline exceeded after {last_error}" if last_error else "deadline exceeded"
                )
                raise self._unavailable(cause, attempt) from exc
            except KmsError as exc:
                if not exc.retryable:
                    raise ServerError(
                        "token signing failed", log_detail=f"kid {self._kid}: {exc}"
                    ) from exc
                last_error = exc.code
                delay = self._retry.delay(attempt, self._rng)
                if loop.time() + delay >= deadline:
                    raise self._unavailable(exc.code, attempt) from exc
                log.warning("kms_sign_retry", extra={"kid": self._kid, "code": exc.code})
                await asyncio.sleep(delay)
                attempt += 1

    async def _sign_once(self, digest: bytes) -> bytes:
        # boto3 is blocking; a worker thread keeps the event loop serving other requests.
        return await asyncio.to_thread(self._client.sign, self._key_id, digest, self._algorithm)

    def _unavailable(self, cause: str, attempt: int) -> TemporarilyUnavailableError:
        return TemporarilyUnavailableError(
            "the signing service is temporarily unavailable",
            log_detail=f"KMS Sign for kid {self._kid} failed after {attempt + 1} attempts: {cause}",
        )
