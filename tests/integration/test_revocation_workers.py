"""`sekisho revoke subject` against a real `sekisho serve` with server.workers = 2: once each
worker's revocation refresh has loaded it, new exchanges for the user are refused on both workers,
a downstream using sekisho.verify refuses the user's already-minted tokens (those minted before a
worker saw it included) while other users' tokens still verify, and a Status List Token read by a
decoder written from the draft alone agrees bit for bit. The same for `sekisho revoke suspend
subject` (SUSPENDED on the wire), and after `revoke reinstate subject` both workers serve the user
again and the downstream accepts the same tokens again (VALID).

No wait here is a bound under test: each waits for the event that does the work (a record
written, a worker's refresh logged, a list refetched) up to GIVE_UP_SECONDS, a hang guard. How
long those take (docs/security-team.md "How long until every downstream refuses") is measured by
bench/status_list.py; the seconds each took here are printed.
"""

import asyncio
import base64
import json
import subprocess
import time
import urllib.request
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
from sekisho.constants import TOKEN_TYPE_ACCESS_TOKEN
from sekisho.devidp import DevIdentityProvider
from sekisho.status.bitlist import INVALID, SUSPENDED, VALID, from_claim
from sekisho.verify import (
    JwksClient,
    SekishoTokenVerifier,
    StatusListClient,
    TokenRejectedError,
)

from tests.integration.conftest import AGENT_AUDIENCE
from tests.opa import opa_binary
from tests.status_records import recorded_tokens
from tests.workers_pod import (
    CALL_TIMEOUT_SECONDS,
    OWN_CONNECTION,
    SEKISHO,
    Pod,
    free_port,
    pod_folder,
    running_pod,
    within,
)

# Safety timeout only (a hung pod): two phases of fresh connections, two 3 s probes and the CLI
# took ~90 s at load 13 against the suite-wide 120 s.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CRM_AS = "https://crm-as.example.com"
CRM_MCP = "https://crm.example.com/mcp"
TTL = 3
REQUESTS = 16  # fresh channels per phase: P(all on one of 2 workers) = 2**-15
# A hang guard, not a bound: far above every wait on a quiet host (about a second), below the
# lists' 60 s lifetime (a downstream that ignored the list ttl would still fail).
GIVE_UP_SECONDS = 30.0


def _config(tmp_path: Path, idp: DevIdentityProvider, policies: Path) -> Path:
    grpc_port, http_port = free_port(), free_port()
    config = tmp_path / "sekisho.toml"
    config.write_text(
        f"""
[server]
grpc_listen = "127.0.0.1:{grpc_port}"
http_listen = "127.0.0.1:{http_port}"
issuer = "http://127.0.0.1:{http_port}"
workers = 2
shutdown_grace_seconds = 2.0

[[trust.issuers]]
issuer = "{idp.issuer}"
discovery_url = "{idp.issuer}/.well-known/openid-configuration"
audiences = ["{AGENT_AUDIENCE}"]

[policy]
path = "{policies}"
opa_binary = "{opa_binary()}"

[keys]
dir = "keys"

[status_list]
enabled = true
path = "status/status.db"
ttl_seconds = {TTL}
lifetime_seconds = 60
poll_seconds = 0.5
flush_interval_seconds = 0.1
""",
        encoding="utf-8",
    )
    return config


@pytest.fixture
async def pod(tmp_path: Path, dev_idp: DevIdentityProvider) -> AsyncIterator[Pod]:
    policies = pod_folder(tmp_path)
    async with running_pod(tmp_path, _config(tmp_path, dev_idp, policies), policies) as running:
        yield running


async def _exchange(pod: Pod, token: str, request_id: str) -> str | None:
    """An access token for the CRM MCP server on a fresh connection, or None when refused."""
    target = f"127.0.0.1:{pod.grpc_port}"
    async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
        stub = pb_grpc.TokenExchangeServiceStub(channel)
        request = pb.ExchangeTokenRequest(
            subject_token=token,
            audience=CRM_AS,
            resource=[CRM_MCP],
            requested_token_type=TOKEN_TYPE_ACCESS_TOKEN,
        )
        try:
            response = await stub.ExchangeToken(
                request, metadata=(("x-request-id", request_id),), timeout=CALL_TIMEOUT_SECONDS
            )
        except grpc.aio.AioRpcError as error:
            refusal = error.code()
        else:
            return str(response.access_token)
    assert refusal == grpc.StatusCode.PERMISSION_DENIED
    return None


async def _phase(pod: Pod, token: str, prefix: str) -> list[str | None]:
    return [await _exchange(pod, token, f"{prefix}{i}") for i in range(REQUESTS)]


def _downstream(issuer: str) -> SekishoTokenVerifier:
    keys = JwksClient(issuer + "/.well-known/jwks.json", clock=time.time)
    return SekishoTokenVerifier(
        issuer=issuer,
        audience=CRM_MCP,
        keys=keys,
        profile="access_token",
        status=StatusListClient(issuer=issuer, keys=keys, max_stale_seconds=30),
    )


async def _accepted(verifier: SekishoTokenVerifier, tokens: list[str]) -> list[bool]:
    results = []
    for token in tokens:
        try:
            await verifier.verify(token)
            results.append(True)
        except TokenRejectedError:
            results.append(False)
    return results


def _loaded_by(pod: Pod, after: int, *, revoked: int, suspended: int) -> set[int]:
    """The workers that logged a revocation refresh loading `revoked` revocations and `suspended`
    suspensions, among the events after the first `after`."""
    return {
        int(str(e["pid"]))
        for e in pod.events()[after:]
        if e.get("event") == "revocations_loaded"
        and (e.get("count"), e.get("suspended")) == (revoked, suspended)
    }


async def _until_every_worker_loaded(
    pod: Pod, token: str, prefix: str, after: int, *, revoked: int, suspended: int
) -> list[str]:
    """Exchanges on fresh connections until every worker's refresh has loaded the change (logged
    after event `after`); returns the tokens granted meanwhile (a worker that had not loaded it
    yet minted them: they are marked when recorded)."""
    started, granted, sent = time.monotonic(), [], 0
    while _loaded_by(pod, after, revoked=revoked, suspended=suspended) != pod.worker_pids():
        assert time.monotonic() - started < GIVE_UP_SECONDS, "a worker never loaded the change"
        sent += 1
        if minted := await _exchange(pod, token, f"{prefix}{sent}"):
            granted.append(minted)
    took = time.monotonic() - started
    print(f"{prefix}: every worker had loaded it {took:.2f} s after the CLI returned")
    return granted


async def _every_worker(pod: Pod, token: str, prefix: str, *, granted: bool) -> None:
    """A phase of exchanges: every one granted (or refused), and both workers answered."""
    results = await _phase(pod, token, prefix)
    assert [bool(t) for t in results] == [granted] * REQUESTS, results
    assert set(pod.served_by(prefix).values()) == pod.worker_pids()


async def _cli(pod: Pod, *argv: str) -> tuple[str, int]:
    """`sekisho revoke …` as a process; its stdout, and how many log events the pod had written
    before it started (a worker may load its change before the process has exited)."""
    before = len(pod.events())
    command = [*SEKISHO, "revoke", *argv, "--reason", "INC-9", "--config", str(pod.config)]
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode(), before


async def _all_recorded(pod: Pod, issuer: str, sub: str, count: int) -> None:
    async def recorded() -> bool:
        return recorded_tokens(pod.config.parent / "status" / "status.db", issuer, sub) == count

    await within(recorded, GIVE_UP_SECONDS)


async def test_suspend_and_reinstate_reach_workers_downstreams_and_the_wire(
    pod: Pod, dev_idp: DevIdentityProvider
) -> None:
    issuer = f"http://127.0.0.1:{pod.http_port}"
    alice = dev_idp.token({"sub": "alice", "aud": AGENT_AUDIENCE, "groups": ["sales"]}, ttl=600)
    bob = dev_idp.token({"sub": "bob", "aud": AGENT_AUDIENCE, "groups": ["sales"]}, ttl=600)
    alice_tokens = [t for t in await _phase(pod, alice, "alice-") if t]
    bob_tokens = [t for t in await _phase(pod, bob, "bob-") if t]
    assert len(alice_tokens) == len(bob_tokens) == REQUESTS
    downstream = _downstream(issuer)
    await _all_recorded(pod, dev_idp.issuer, "alice", REQUESTS)
    subject = ("subject", "--issuer", dev_idp.issuer, "--sub", "alice")

    out, after = await _cli(pod, "suspend", *subject)
    assert f"{REQUESTS} live token(s) marked SUSPENDED" in out
    # Minted before a worker's refresh saw the suspension: marked SUSPENDED when recorded.
    alice_tokens += await _until_every_worker_loaded(
        pod, alice, "held-", after, revoked=0, suspended=1
    )
    await _every_worker(pod, alice, "held-after-", granted=False)
    assert all(await _phase(pod, bob, "bob-during-"))

    async def downstream_accepts_alice(expected: bool) -> bool:
        return await _accepted(downstream, alice_tokens) == [expected] * len(alice_tokens)

    await within(lambda: downstream_accepts_alice(False), GIVE_UP_SECONDS)
    assert await _accepted(downstream, bob_tokens) == [True] * REQUESTS
    await _all_recorded(pod, dev_idp.issuer, "alice", len(alice_tokens))
    _independent_wire_check(issuer, alice_tokens, bob_tokens, alice_status=SUSPENDED)

    out, after = await _cli(pod, "reinstate", *subject)
    assert f"{len(alice_tokens)} live token(s) VALID again" in out
    await _until_every_worker_loaded(pod, alice, "back-", after, revoked=0, suspended=0)
    await _every_worker(pod, alice, "back-after-", granted=True)
    await within(lambda: downstream_accepts_alice(True), GIVE_UP_SECONDS)  # the same tokens
    _independent_wire_check(issuer, alice_tokens, bob_tokens, alice_status=VALID)


async def test_revoke_subject_reaches_workers_and_downstreams(
    pod: Pod, dev_idp: DevIdentityProvider, tmp_path: Path
) -> None:
    issuer = f"http://127.0.0.1:{pod.http_port}"

    def user(sub: str) -> str:
        return dev_idp.token({"sub": sub, "aud": AGENT_AUDIENCE, "groups": ["sales"]}, ttl=600)

    alice, bob = user("alice"), user("bob")
    alice_tokens = [t for t in await _phase(pod, alice, "alice-") if t]
    bob_tokens = [t for t in await _phase(pod, bob, "bob-") if t]
    assert len(alice_tokens) == len(bob_tokens) == REQUESTS
    assert len(set(pod.served_by("alice-").values())) == 2  # both workers minted
    downstream = _downstream(issuer)
    assert await _accepted(downstream, alice_tokens + bob_tokens) == [True] * 2 * REQUESTS

    await _all_recorded(pod, dev_idp.issuer, "alice", REQUESTS)
    # The revocation is in the store when the command returns.
    out, after = await _cli(pod, "subject", "--issuer", dev_idp.issuer, "--sub", "alice")
    assert f"{REQUESTS} live token(s) marked INVALID" in out

    # Minted before a worker's refresh saw the revocation: marked INVALID when recorded.
    alice_tokens += await _until_every_worker_loaded(
        pod, alice, "probe-", after, revoked=1, suspended=0
    )
    await _every_worker(pod, alice, "probe-after-", granted=False)
    assert all(await _phase(pod, bob, "bob-after-"))  # other users are still served

    async def downstream_refuses_alice() -> bool:
        return await _accepted(downstream, alice_tokens) == [False] * len(alice_tokens)

    await within(downstream_refuses_alice, GIVE_UP_SECONDS)
    assert await _accepted(downstream, bob_tokens) == [True] * REQUESTS
    await _all_recorded(pod, dev_idp.issuer, "alice", len(alice_tokens))
    _independent_wire_check(issuer, alice_tokens, bob_tokens)


# --- an independent decoder, written from draft-ietf-oauth-status-list alone ---------------------


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _fetch(url: str, accept: str = "") -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=CALL_TIMEOUT_SECONDS) as response:
        return dict(response.headers), response.read()


def _verify_es256(compact: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """RFC 7515 compact JWS with ES256 (RFC 7518 §3.4: R || S), checked with `cryptography`."""
    head, body, signature = compact.split(".")
    header = json.loads(_b64(head))
    assert header["alg"] == "ES256"
    (jwk,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(_b64(jwk["x"])), int.from_bytes(_b64(jwk["y"])), ec.SECP256R1()
    )
    raw = _b64(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
    numbers.public_key().verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
    return header, json.loads(_b64(body))


def _draft_status(lst: str, bits: int, idx: int) -> int:
    """§4.1: ZLIB-inflate, then entry idx holds `bits` bits starting at the least significant bit
    of byte (idx * bits) // 8."""
    array = zlib.decompress(_b64(lst))
    bit = idx * bits
    return (array[bit // 8] >> (bit % 8)) & ((1 << bits) - 1)


def _independent_wire_check(
    issuer: str, alice: list[str], bob: list[str], *, alice_status: int = INVALID
) -> None:
    _, jwks_body = _fetch(issuer + "/.well-known/jwks.json")
    jwks = json.loads(jwks_body)
    references = {
        who: [
            jwt.decode(t, options={"verify_signature": False})["status"]["status_list"]
            for t in tokens
        ]
        for who, tokens in (("alice", alice), ("bob", bob))
    }
    lists: dict[str, dict[str, Any]] = {}
    for reference in references["alice"] + references["bob"]:
        uri = reference["uri"]
        if uri in lists:
            continue
        headers, body = _fetch(uri, accept="application/statuslist+jwt")
        assert headers["Content-Type"] == "application/statuslist+jwt"
        assert headers["Cache-Control"] == f"public, max-age={TTL}"
        header, claims = _verify_es256(body.decode(), jwks)
        assert header["typ"] == "statuslist+jwt"
        assert claims["sub"] == uri and claims["ttl"] == TTL
        assert claims["iat"] <= time.time() < claims["exp"]
        lists[uri] = claims["status_list"]
    for who, expected in (("alice", alice_status), ("bob", VALID)):
        for reference in references[who]:
            status_list = lists[reference["uri"]]
            got = _draft_status(status_list["lst"], status_list["bits"], reference["idx"])
            assert got == expected, (who, reference)
    marked = 0
    for status_list in lists.values():  # bit for bit with the project's own decoder
        ours = from_claim(status_list)
        size = len(zlib.decompress(_b64(status_list["lst"]))) * 8 // status_list["bits"]
        theirs = [_draft_status(status_list["lst"], status_list["bits"], i) for i in range(size)]
        assert theirs == [ours.status(i) for i in range(size)]
        marked += sum(theirs)
    # exactly alice's tokens are marked (INVALID or SUSPENDED), in whichever list
    assert marked == alice_status * len(alice)
