"""The production policy flow of deploy/ (docs/operations.md "Kubernetes"), for real:
CI runs `sekisho policy build` (the CLI, signing with an ES256 key) on policies/, a bundle
server on loopback serves the result, and a Sekisho started with the [policy] table of
deploy/base/configmap.yaml — only bundle_url and bundle_verification_key pointed at loopback
and a temporary key file — loads it and decides, with no opa binary it could fall back on.

Security claims tested here: a bundle not signed by CI's key never serves (the replica stays
not ready; an attacker who can write to the bundle server cannot grant anything); a key that
is not a key (the manifests' placeholder) stops the start instead of leaving replicas silently
never ready; the bundle download verifies TLS against the default trust store (which
SSL_CERT_FILE replaces for every connection), or against [policy] bundle_ca_file only, the
documented way to trust a private bundle server's CA. Rollout
claims: a polled bundle is in force for cached decisions too, and a replica that started
while the server was down retries at once instead of after a whole poll interval."""

import asyncio
import datetime
import json
import logging
import os
import ssl
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
from sekisho.config import PolicyConfig
from sekisho.devidp import DevIdentityProvider
from sekisho.errors import PolicyLoadError
from sekisho.policy.wasm.bundles import BundlePolicyEngine
from sekisho.policy.wasm.download import BundleDownloader, BundleFetchError
from sekisho.policy_components import bundle_engine, bundle_ssl_context
from sekisho.signing.filestore import FileKeyStore

from tests.bounds import bundle_polling, wasm_limits
from tests.embedded import shared_runtime
from tests.fakes.clock import FakeClock
from tests.fakes.loops import RecordedFailures
from tests.grpc_errors import error_info
from tests.integration.conftest import stack_settings
from tests.integration.test_opa_service import CRM_AS, GIVE_UP_SECONDS, running, until
from tests.integration.test_policy_bundles import BundleServer, bundle, no_crm_grants, server
from tests.opa import REPO, with_opa_on_path
from tests.unit.policy.inputs import QUERY

pytestmark = pytest.mark.integration
__all__ = ["server"]  # the loopback bundle server fixture

CONFIGMAP = REPO / "deploy" / "base" / "configmap.yaml"
REVISION = "ci-0123abc"


def deployed_policy_table() -> dict[str, Any]:
    data = yaml.safe_load(CONFIGMAP.read_text(encoding="utf-8"))["data"]
    table: dict[str, Any] = tomllib.loads(data["sekisho.toml"])["policy"]
    return table


def placeholder_key() -> str:
    data = yaml.safe_load(CONFIGMAP.read_text(encoding="utf-8"))["data"]
    return str(data["bundle-signing.pub.pem"])


def write_key_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """An ES256 (P-256) signing key as CI holds it, and its public half as the pod mounts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def ci_build(output: Path, signing_key: Path) -> bytes:
    """The CI step (docs/examples/policy-bundle-ci.yml): `sekisho policy build` in the checkout."""
    command = [
        sys.executable, "-m", "sekisho", "policy", "build", "--output", str(output),
        "--revision", REVISION, "--signing-key", str(signing_key), "--signing-alg", "ES256",
    ]  # fmt: skip
    env = with_opa_on_path(os.environ)
    env.pop("SEKISHO_CONFIG", None)
    done = subprocess.run(
        command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "signed" in done.stdout and f"revision '{REVISION}'" in done.stdout
    return output.read_bytes()


def replica_policy(url: str, verification_key: Path) -> dict[str, Any]:
    """The configmap's [policy], adapted to loopback; opa_binary names nothing that exists, so a
    replica that needed opa would fail to start."""
    table = deployed_policy_table()
    assert table["bundle_url"].startswith("https://") and table["bundle_verification_key"]
    return {
        **table,
        "bundle_url": url,
        "bundle_verification_key": str(verification_key),
        "opa_binary": "/nonexistent/opa",
    }


async def test_ci_bundle_reaches_a_replica_running_the_deployed_config(
    tmp_path: Path,
    server: BundleServer,
    dev_idp: DevIdentityProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signer, public = write_key_pair(tmp_path, "ci")
    intruder, _ = write_key_pair(tmp_path, "intruder")
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys, policy=replica_policy(server.url, public))
    # Someone who can write to the bundle server, but does not hold CI's key.
    server.publish(ci_build(tmp_path / "forged.tar.gz", intruder))
    signed = ci_build(tmp_path / "sekisho.tar.gz", signer)  # before the start: no backoff
    with caplog.at_level(logging.INFO, logger="sekisho.policy"):
        async with running(settings, dev_idp) as stack:
            assert await stack.readyz() == 503
            assert await stack.outcome(["sales"]) == "temporarily_unavailable"
            assert any(r.message == "policy_bundle_rejected" for r in caplog.records)

            server.publish(signed)
            # The retry after a failure: 0.1 s, doubling (up to bundle_poll_max_seconds).
            await until(stack.readyz, 200, GIVE_UP_SECONDS)
            assert await stack.outcome(["sales"]) == "crm.read"
            loaded = [r for r in caplog.records if r.message == "policy_bundle_loaded"]
            assert [getattr(r, "revision", None) for r in loaded] == [REVISION]

            # The bundle server goes down: a poll (SIGHUP polls at once) fails, the last good
            # bundle keeps serving and the replica stays ready.
            server.status = 503
            before = len(server.answers)
            await stack.service.reload()
            assert server.answers[before:] == [503]
            assert await stack.readyz() == 200
            assert await stack.outcome(["sales"]) == "crm.read"


async def test_the_manifests_placeholder_key_stops_the_start(
    tmp_path: Path, server: BundleServer, dev_idp: DevIdentityProvider
) -> None:
    # deploy/base/configmap.yaml ships a placeholder until the operator puts CI's public key
    # there. It must stop the start with the reason, not pass as a key and reject every bundle.
    key = tmp_path / "bundle-signing.pub.pem"
    key.write_text(placeholder_key(), encoding="utf-8")
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    settings = stack_settings(dev_idp.issuer, keys, policy=replica_policy(server.url, key))
    with pytest.raises(PolicyLoadError, match="not a ES256 key"):
        async with running(settings, dev_idp):
            pass


# --- TLS to a bundle server under a private CA (deploy/examples/bundle-server) ------------------


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, signer: Any
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        san = x509.SubjectAlternativeName([x509.DNSName("localhost")])
        builder = builder.add_extension(san, False)
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """An https bundle server for `localhost` whose certificate a private CA issued; yields its
    URL and the CA file."""
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("test bundle CA", ca_key, None, ca_key)
    leaf = _certificate("localhost", server_key, ca, ca_key)
    (tmp_path / "ca.pem").write_bytes(_pem(ca))
    (tmp_path / "server.pem").write_bytes(_pem(leaf))
    (tmp_path / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    app = web.Application()
    app.router.add_get("/bundles/sekisho.tar.gz", _bundle_bytes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield f"https://localhost:{port}/bundles/sekisho.tar.gz", tmp_path / "ca.pem"
    await runner.cleanup()


async def _bundle_bytes(_: web.Request) -> web.Response:
    return web.Response(body=b"bundle bytes", headers={"ETag": '"1"'})


FETCH = """
import asyncio, sys
from sekisho.policy.wasm.download import BundleDownloader, BundleFetchError
async def main():
    downloader = BundleDownloader(sys.argv[1], 5.0)
    try:
        print((await downloader.fetch("")).etag)
    except BundleFetchError as exc:
        print("refused", exc)
    finally:
        await downloader.close()
asyncio.run(main())
"""


async def _fetch_in_a_new_process(url: str, ca_file: Path | None) -> str:
    # A new process: the trust store is read when the HTTP client's TLS context is made.
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    if ca_file is not None:
        env["SSL_CERT_FILE"] = str(ca_file)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FETCH, url, env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    return stdout.decode().strip()


async def test_bundle_download_trusts_a_private_ca_only_through_ssl_cert_file(
    tls_server: tuple[str, Path],
) -> None:
    url, ca_file = tls_server
    refused = await _fetch_in_a_new_process(url, None)
    assert refused.startswith("refused") and "Certificate" in refused
    assert await _fetch_in_a_new_process(url, ca_file) == json.dumps("1")


async def test_bundle_ca_file_trusts_a_private_ca_for_the_bundle_server_only(
    tls_server: tuple[str, Path],
) -> None:
    url, ca_file = tls_server
    system = BundleDownloader(url, 5.0, ssl_context=bundle_ssl_context(None))
    private = BundleDownloader(url, 5.0, ssl_context=bundle_ssl_context(ca_file))
    try:
        with pytest.raises(BundleFetchError, match=r"(?i)certificate"):
            await system.fetch("")
        assert (await private.fetch("")).etag == '"1"'
    finally:
        await system.close()
        await private.close()


@pytest.mark.parametrize(
    ("use_ca_file", "failure"),
    [
        pytest.param(False, "download_failed", id="without-refused"),
        # Fetched: the fixture's body is not a bundle, so it is rejected after the download.
        pytest.param(True, "rejected", id="with-fetched"),
    ],
)
async def test_policy_bundle_ca_file_reaches_the_downloader(
    tls_server: tuple[str, Path], use_ca_file: bool, failure: str
) -> None:
    url, ca_file = tls_server
    policy = PolicyConfig(bundle_url=url, bundle_ca_file=ca_file if use_ca_file else None)
    engine = bundle_engine(policy, FakeClock(), RecordedFailures())
    try:
        assert not await engine.refresh()
        assert engine.status.failures == {failure: 1}
    finally:
        await engine.close()


# --- rollout: a new bundle is in force for every exchange once it loaded -------------------------


async def _same_token_outcome(stack: Any, token: str) -> str:
    request = pb.ExchangeTokenRequest(subject_token=token, audience=CRM_AS)
    try:
        return " ".join((await stack.stub.ExchangeToken(request)).scope)
    except grpc.aio.AioRpcError as error:
        return str(error_info(error).reason)


async def test_a_polled_bundle_flushes_the_decision_cache(
    tmp_path: Path, server: BundleServer, dev_idp: DevIdentityProvider
) -> None:
    # The registry caches a grant for 60 s (decision_cache_seconds). A bundle that withdraws it
    # (a deny-list entry, a removed grant) must apply to the next exchange, not a minute later.
    keys = tmp_path / "keys"
    FileKeyStore(keys).init("ES256", 1_800_000_000)
    policy = {
        "bundle_url": server.url,
        "bundle_poll_min_seconds": 0.1,
        "bundle_poll_max_seconds": 0.2,
    }
    server.publish(bundle(tmp_path, "v1"))
    settings = stack_settings(dev_idp.issuer, keys, policy=policy)
    async with running(settings, dev_idp) as stack:
        token = stack.token(["sales"])
        assert await _same_token_outcome(stack, token) == "crm.read"  # now cached
        server.publish(bundle(tmp_path, "v2", edit=no_crm_grants))
        # Give-up 30 s < the 60 s cache: an unflushed grant would still be cached below.
        await until(lambda: _revision(stack), "v2", GIVE_UP_SECONDS)
        assert await _same_token_outcome(stack, token) == "access_denied"


async def _revision(stack: Any) -> str:
    return str(stack.service.policy.engine.policy.revision)


async def test_a_replica_that_started_without_a_bundle_retries_at_once(
    tmp_path: Path, server: BundleServer
) -> None:
    # With the deployed 10-30 s poll (OPA's default is 60-120 s), a replica started while the
    # bundle server was down must not wait a whole interval once it is back: it is not ready.
    server.status = 503
    policies = BundlePolicyEngine(
        QUERY,
        wasm_limits(),
        failures=RecordedFailures(),
        runtime=shared_runtime(),
        downloader=BundleDownloader(server.url, 5.0),
        polling=bundle_polling(),
    )
    await policies.start()
    try:
        assert not policies.ready
        server.publish(bundle(tmp_path, "v1"))
        server.status = 200
        for _ in range(250):  # 5 s: the retries run at 0.1, 0.2, 0.4 ... s
            if policies.ready:
                break
            await asyncio.sleep(0.02)
        assert policies.ready and policies.policy.revision == "v1"
    finally:
        await policies.close()
