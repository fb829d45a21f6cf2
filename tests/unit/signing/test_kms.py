"""KmsSigner with a fake KMS: signatures verify with the published JWK, DIGEST signing, DER →
R||S, retries with backoff inside the deadline, error translation, and a free event loop."""

import asyncio
import base64
import json
import random
import threading
from dataclasses import dataclass, field

import jwt
import pytest
from sekisho.errors import ServerError, TemporarilyUnavailableError
from sekisho.signing.kms import KMS_KEY_TYPES, KmsSigner, RetryPolicy
from sekisho.signing.kms_client import KmsError
from sekisho.signing.material import public_jwk, public_key_from_der, thumbprint
from sekisho.signing.signer import published_jwk

from tests.fakes.kms import FakeKms, throttled

# Quick backoffs, and a deadline that is only a hang guard: the tests of the deadline pass their
# own. At 1 s, three thread hops to the fake (up to 0.2 s each at load ~11) and a stall could
# run it out, so a call that must sign, or fail as a server error, could be temporarily_unavailable.
FAST = RetryPolicy(deadline_seconds=30.0, base_delay=0.001, max_delay=0.01)
# Only stops a test whose defence is gone (a call never cut, a loop never free); no claim here
# is timed (a loaded CI machine, load ~12 on 2 cores, delays thread hops and timers by far more
# than the deadlines under test).
GIVE_UP_SECONDS = 10.0


@dataclass(frozen=True)
class RecordingRetryPolicy(RetryPolicy):
    """The policy, remembering each backoff delay the signer asked for (in order)."""

    delays: list[float] = field(default_factory=list)

    def delay(self, attempt: int, rng: random.Random) -> float:
        chosen = RetryPolicy.delay(self, attempt, rng)
        self.delays.append(chosen)
        return chosen


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _signer(kms: FakeKms, alg: str = "ES256", retry: RetryPolicy = FAST) -> KmsSigner:
    key_id = kms.create_key(KMS_KEY_TYPES[alg].key_spec, "SIGN_VERIFY", {}, "test")
    public = public_key_from_der(kms.get_public_key(key_id), alg)
    return KmsSigner(
        kid=thumbprint(public_jwk(public)),
        alg=alg,
        public_key=public,
        key_id=key_id,
        client=kms,
        retry=retry,
        rng=random.Random(7),  # noqa: S311 - jitter
    )


async def _token(signer: KmsSigner) -> str:
    header = _b64(json.dumps({"alg": signer.alg, "kid": signer.kid}).encode())
    payload = _b64(json.dumps({"sub": "alice"}).encode())
    signing_input = f"{header}.{payload}"
    return f"{signing_input}.{_b64(await signer.sign(signing_input.encode()))}"


@pytest.mark.parametrize("alg", sorted(KMS_KEY_TYPES))
async def test_kms_signature_verifies_with_the_published_jwk(alg: str) -> None:
    signer = _signer(FakeKms(), alg)
    token = await _token(signer)
    key = jwt.PyJWK(published_jwk(signer))
    assert jwt.decode(token, key, algorithms=[alg]) == {"sub": "alice"}


async def test_es256_signature_is_64_bytes_of_r_and_s() -> None:
    token = await _token(_signer(FakeKms()))
    signature = base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")
    assert len(signature) == 64


async def test_kms_receives_only_the_sha256_digest() -> None:
    kms = FakeKms()
    signer = _signer(kms)
    seen: list[bytes] = []
    real = kms.sign
    kms.sign = lambda key_id, digest, algorithm: (
        seen.append(digest) or real(key_id, digest, algorithm)
    )  # type: ignore[method-assign]
    await signer.sign(b"header.payload-with-claims")
    assert len(seen) == 1 and len(seen[0]) == 32
    assert b"claims" not in seen[0]


async def test_throttling_is_retried_until_it_succeeds() -> None:
    kms = FakeKms()
    signer = _signer(kms)
    kms.fail("Sign", throttled(), throttled())
    token = await _token(signer)
    assert kms.calls["Sign"] == 3
    assert jwt.decode(token, jwt.PyJWK(published_jwk(signer)), algorithms=["ES256"])


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(throttled(), id="throttling"),
        pytest.param(KmsError("Sign", "KMSInternalException", "", retryable=True), id="kms-5xx"),
        pytest.param(KmsError("Sign", "EndpointConnectionError", "", retryable=True), id="network"),
    ],
)
async def test_persistent_retryable_failure_is_temporarily_unavailable_within_the_deadline(
    error: KmsError,
) -> None:
    kms = FakeKms()
    # 3 s, not 0.5 s: ">= 2 calls" below needs time for a second attempt after the first,
    # which a thread hop (0.2 s at load ~11) and a stall of half a second could leave none of.
    retry = RecordingRetryPolicy(deadline_seconds=3.0, base_delay=0.01, max_delay=0.05)
    signer = _signer(kms, retry=retry)
    # Without the deadline the signer retries through all of these and then signs (no error).
    kms.fail("Sign", *([error] * 1000))
    with pytest.raises(TemporarilyUnavailableError) as raised:
        await signer.sign(b"x.y")
    # Every backoff slept began before the deadline and lasted at least its delay, so the
    # delays slept add up to less than the deadline (the last delay asked for may be the one
    # that would have crossed it, not slept). Without the check they add up to ~15 s.
    slept = retry.delays[: kms.calls["Sign"] - 1]
    assert sum(slept) < retry.deadline_seconds
    assert raised.value.reason == "temporarily_unavailable"
    assert raised.value.grpc_code == "UNAVAILABLE"
    # It did retry: >= 2, not > 2 — at load ~11 one thread hop to the fake can take 0.2 s, and a
    # third attempt inside a 0.3 s deadline was the 'throttling' case's flake.
    assert kms.calls["Sign"] >= 2
    # The cause is logged even when the deadline cuts an attempt in flight (at load it often
    # does: the log said only "deadline exceeded", which was this case's other flake).
    assert error.code in raised.value.log_detail


def test_backoff_is_jittered_exponential_and_capped() -> None:
    policy = RetryPolicy(deadline_seconds=5, base_delay=0.1, max_delay=0.4)
    rng = random.Random(1)  # noqa: S311 - jitter
    delays = [[policy.delay(attempt, rng) for _ in range(200)] for attempt in range(5)]
    assert max(delays[0]) <= 0.1 and max(delays[1]) <= 0.2 and max(delays[4]) <= 0.4
    assert len({round(d, 6) for d in delays[3]}) > 100  # jitter: not one fixed delay


@pytest.mark.parametrize(
    "code", ["AccessDeniedException", "DisabledException", "NotFoundException"]
)
async def test_non_retryable_refusal_is_a_server_error_after_one_call(code: str) -> None:
    kms = FakeKms()
    signer = _signer(kms)
    kms.fail("Sign", KmsError("Sign", code, "no", retryable=False))
    with pytest.raises(ServerError) as raised:
        await signer.sign(b"x.y")
    assert type(raised.value) is ServerError
    assert kms.calls["Sign"] == 1
    assert code in raised.value.log_detail
    assert code not in raised.value.public_message


async def test_a_hanging_kms_call_is_cut_at_the_deadline() -> None:
    """Event order, not elapsed time: the signer answers unavailable while the KMS call is still
    hanging. Uncut, it would wait for the call's (garbage) answer: a server_error after it."""
    kms = FakeKms()
    signer = _signer(kms, retry=RetryPolicy(deadline_seconds=0.2))
    release, answered = threading.Event(), threading.Event()

    def hang(*args: object) -> bytes:
        release.wait(GIVE_UP_SECONDS)
        answered.set()
        return b""

    kms.sign = hang  # type: ignore[method-assign,assignment]
    try:
        with pytest.raises(TemporarilyUnavailableError) as raised:
            await signer.sign(b"x.y")
        assert not answered.is_set()  # cut while KMS still had the call
        assert "deadline exceeded" in raised.value.log_detail
    finally:
        release.set()


async def test_kms_signing_does_not_block_the_event_loop() -> None:
    kms = FakeKms()
    signer = _signer(kms, retry=RetryPolicy(deadline_seconds=GIVE_UP_SECONDS * 2))
    real = kms.sign
    loop_ran = threading.Event()

    def slow(key_id: str, digest: bytes, algorithm: str) -> bytes:
        # A round trip that lasts until the event loop has run other work (no fixed sleep to
        # race: a loaded machine only makes it longer). On the loop itself it could not end.
        assert loop_ran.wait(GIVE_UP_SECONDS), "the event loop was blocked during the KMS call"
        return real(key_id, digest, algorithm)

    kms.sign = slow  # type: ignore[method-assign]

    async def other_work() -> None:
        for _ in range(10):
            await asyncio.sleep(0.01)
        loop_ran.set()

    task = asyncio.create_task(other_work())
    await signer.sign(b"x.y")
    await task


async def test_malformed_der_from_kms_is_a_server_error() -> None:
    kms = FakeKms()
    signer = _signer(kms)
    kms.sign = lambda *args: b"\x30\x02\x00\x00"  # type: ignore[method-assign]
    with pytest.raises(ServerError, match="token signing failed"):
        await signer.sign(b"x.y")
