"""A private_key_jwt flood costs a bounded number of signature verifications.

One verification is ~0.03-0.8 ms of CPU depending on the key type (bench/results/assertion_gate.md).
Assertions pass their own attempt gate (per-peer and global per-second budgets) before they are
parsed or any key is looked up, and are refused like Basic's gate refuses: slow_down, HTTP 429 +
Retry-After. An unknown client, unknown kid or malformed assertion costs no verification at all.
Each test fails if its defence is removed.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sekisho.attempts import AttemptGate, AttemptLimits
from sekisho.callers import RateLimit
from sekisho.config import ClientConfig, TrustConfig
from sekisho.constants import GRANT_TYPE_TOKEN_EXCHANGE
from sekisho.devidp import DevIdentityProvider
from sekisho.errors import InvalidClientError, SlowDownError
from sekisho.http import assertion as assertion_module
from sekisho.http.client_auth import CLIENT_ASSERTION_TYPE, ClientAuthenticator, RegisteredClient
from sekisho.http.secrets import SecretChecker
from sekisho.service import Service, start_service
from sekisho.signing.filestore import FileKeyStore
from sekisho.verify.replay import InMemoryReplayCache

from tests.bounds import attempt_limits
from tests.fakes.clock import FakeClock
from tests.integration.conftest import SEKISHO_ISSUER, dev_idp, stack_settings  # noqa: F401 (fixture)

NOW = 1_800_000_000.0
AUDIENCE = SEKISHO_ISSUER + "/oauth2/token"
KEY = ec.generate_private_key(ec.SECP256R1())
LOOSE = attempt_limits(rate=RateLimit(1e6, 1_000_000), rate_per_peer=RateLimit(1e6, 1_000_000))


def _jwks(kid: str = "k1") -> str:
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))
    return json.dumps({"keys": [{**jwk, "kid": kid, "alg": "ES256"}]})


def _assertion(sub: str = "agent", kid: str = "k1", now: float = NOW) -> str:
    claims = {
        "iss": sub, "sub": sub, "aud": AUDIENCE,
        "iat": int(now), "exp": int(now) + 60, "jti": uuid.uuid4().hex,
    }  # fmt: skip
    return jwt.encode(claims, KEY, algorithm="ES256", headers={"kid": kid})


def _form(assertion: str) -> dict[str, str]:
    return {"client_assertion_type": CLIENT_ASSERTION_TYPE, "client_assertion": assertion}


class VerificationCounter:
    """Counts the real signature verifications the assertion layer performs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = assertion_module._ALGORITHMS
        counting = {name: self._counting(algorithm) for name, algorithm in real.items()}
        monkeypatch.setattr(assertion_module, "_ALGORITHMS", counting)

    def _counting(self, algorithm: Any) -> Any:
        counter = self

        class Counting:
            def verify(self, message: bytes, key: Any, signature: bytes) -> bool:
                counter.count += 1
                return bool(algorithm.verify(message, key, signature))

        return Counting()


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> VerificationCounter:
    return VerificationCounter(monkeypatch)


@pytest.fixture(scope="module")
def checker() -> Iterator[SecretChecker]:
    checker = SecretChecker(1)
    yield checker
    checker.close()


def _authenticator(
    checker: SecretChecker, limits: AttemptLimits = LOOSE, clock: FakeClock | None = None
) -> ClientAuthenticator:
    keys = jwt.PyJWKSet.from_json(_jwks())
    return ClientAuthenticator(
        {"agent": RegisteredClient("agent", keys={k.key_id or "": k for k in keys.keys})},
        audiences=frozenset({AUDIENCE}),
        replay_cache=InMemoryReplayCache(),
        gate=AttemptGate(FakeClock(NOW), LOOSE),
        assertion_gate=AttemptGate(clock or FakeClock(NOW), limits),
        secrets=checker,
        leeway_seconds=TrustConfig().leeway_seconds,
        tarpit_seconds=0.0,
    )


@pytest.mark.parametrize(
    ("limits", "peers"),
    [
        pytest.param(
            attempt_limits(rate_per_peer=RateLimit(1.0, 2), rate=RateLimit(1e6, 1_000_000)),
            ["attacker", "attacker"],
            id="per-peer",
        ),
        pytest.param(
            attempt_limits(rate_per_peer=RateLimit(1e6, 1_000_000), rate=RateLimit(1.0, 2)),
            ["a", "b"],
            id="global",
        ),
    ],
)
async def test_assertion_flood_is_refused_before_any_signature_work(
    checker: SecretChecker,
    verifications: VerificationCounter,
    limits: AttemptLimits,
    peers: list[str],
) -> None:
    clock = FakeClock(NOW)
    authenticator = _authenticator(checker, limits, clock)
    for peer in peers:  # the burst: real clients, authenticated
        caller = await authenticator.authenticate("", _form(_assertion()), NOW, peer=peer)
        assert caller.authenticated_by == "private_key_jwt"
    assert verifications.count == 2
    for _ in range(50):
        with pytest.raises(SlowDownError) as refused:
            await authenticator.authenticate("", _form(_assertion()), NOW, peer="attacker")
        assert refused.value.metadata["retry_after"] == "1"
    assert verifications.count == 2  # not one more verification for the whole flood
    clock.advance(1.0)
    await authenticator.authenticate("", _form(_assertion()), NOW + 1, peer="attacker")


@pytest.mark.parametrize(
    "assertion",
    [
        pytest.param(_assertion(sub="nobody"), id="unknown-client"),
        pytest.param(_assertion(kid="unknown-kid"), id="unknown-kid"),
        pytest.param("not.a.jwt", id="malformed"),
        pytest.param(_assertion().rsplit(".", 1)[0] + ".!!!", id="malformed-signature"),
        pytest.param("", id="empty"),
    ],
)
async def test_unknown_client_or_malformed_assertion_costs_no_verification(
    checker: SecretChecker, verifications: VerificationCounter, assertion: str
) -> None:
    with pytest.raises(InvalidClientError):
        await _authenticator(checker).authenticate("", _form(assertion), NOW, peer="p")
    assert verifications.count == 0


# --- over HTTP: the same answer as Basic's gate --------------------------------------------------


@pytest.fixture
async def limited(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Service]:  # noqa: F811
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(
        dev_idp.issuer,
        keys,
        token_endpoint={"clients": (ClientConfig(id="agent", jwks=_jwks()),)},
        client_auth={"assertion_rate_per_second_per_peer": 0.001, "assertion_burst_per_peer": 1},
    )
    service = await start_service(settings)
    yield service
    await service.stop(0.5)


@pytest.mark.integration
async def test_http_assertion_flood_gets_429_slow_down_with_retry_after(limited: Service) -> None:
    url = f"http://127.0.0.1:{limited.http_port}/oauth2/token"
    form = {"grant_type": GRANT_TYPE_TOKEN_EXCHANGE, "audience": "https://crm-as.example.com"}
    async with aiohttp.ClientSession() as session:
        answers = []
        for _ in range(2):
            data = {**form, **_form(_assertion(now=time.time()))}
            async with session.post(url, data=data) as response:
                answers.append((response.status, await response.json(), response.headers))
    assert answers[0][0] != 429  # the burst of one goes through to the exchange
    status, body, headers = answers[1]
    assert (status, body["error"]) == (429, "slow_down")
    assert int(headers["Retry-After"]) >= 1
