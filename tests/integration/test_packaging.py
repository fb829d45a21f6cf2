"""What SDK users install: `sekisho[client]` and `sekisho[verify]` bring only what those SDKs need
and never import the server (pyproject.toml extras; docs/integrators.md#installing).

The wheel is built once and each extra installed into its own clean venv (pinned by
constraints.txt; pip's cache makes repeat runs fast), then a script imports and uses the SDK there:
the client exchanges a token with a stand-in ExchangeToken server on loopback, the verifier
validates an ID-JAG signed with a fresh key.
"""

import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Distributions only the service needs: none may be installed by an SDK extra.
SERVER_ONLY = ("boto3", "pydantic", "wasmtime", "prometheus-client", "opa-python-client",
               "watchfiles", "argon2-cffi", "xds-protos", "grpcio-reflection")  # fmt: skip
# Sekisho modules an SDK may load: its own package, the stubs and the wire formats both sides
# share, which use the standard library only (token type URNs, the Status List bit array, the
# backoff, single-flight and LRU helpers, the clock protocol, the secure-URL rule, the log
# line throttle, the code point and scope-token rules).
SDK_MODULES = ("sekisho.client", "sekisho.verify", "sekisho.constants", "sekisho._gen",
               "sekisho.status.bitlist", "sekisho.backoff", "sekisho.singleflight",
               "sekisho.lru", "sekisho.profiles", "sekisho.clock", "sekisho.urls",
               "sekisho.log_throttle", "sekisho.codepoints")  # fmt: skip
SHARED_PACKAGES = ("sekisho.status",)  # a package whose __init__ a shared module's import runs
INSTALL_TIMEOUT = 600
# What the client extra must not bring: the verifier's crypto and HTTP stack (the exchanger
# imports sekisho.verify only when revocation is followed, which needs sekisho[verify]).
NOT_FOR_THE_CLIENT = ("cryptography", "aiohttp")

CLIENT_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    import grpc
    from sekisho._gen.sekisho.v1 import token_exchange_pb2 as pb
    from sekisho._gen.sekisho.v1 import token_exchange_pb2_grpc as pb_grpc
    from sekisho.client import ChannelOptions, TokenExchangeClient

    class StandIn(pb_grpc.TokenExchangeServiceServicer):
        async def ExchangeToken(self, request, context):
            return pb.ExchangeTokenResponse(
                access_token="minted-for-" + request.audience, expires_in=300,
                issued_token_type="urn:ietf:params:oauth:token-type:id-jag", token_type="N_A",
                scope=list(request.scope), audience=request.audience, jti="j-1")

    async def main():
        server = grpc.aio.server()
        pb_grpc.add_TokenExchangeServiceServicer_to_server(StandIn(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            target, options = f"127.0.0.1:{port}", ChannelOptions(insecure=True)
            async with TokenExchangeClient(
                target, channel_options=options, timeout_seconds=30
            ) as client:
                token = await client.exchange("user-token", "https://as.example", scopes=["read"])
        finally:
            await server.stop(0)
        assert token.access_token == "minted-for-https://as.example", token
        print("\\n".join(sys.modules))

    asyncio.run(main())
""")

VERIFY_SCRIPT = textwrap.dedent("""
    import asyncio, sys, time, uuid
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec
    from sekisho.verify import InMemoryReplayCache, SekishoTokenVerifier

    key = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {"iss": "https://sekisho.example", "sub": "alice", "aud": "https://as.example",
              "client_id": "agent", "jti": uuid.uuid4().hex, "iat": now, "exp": now + 300,
              "scope": "read"}
    token = jwt.encode(claims, key, "ES256", headers={"typ": "oauth-id-jag+jwt", "kid": "k1"})

    class Keys:
        async def key(self, kid):
            return jwt.PyJWK.from_dict({**jwt.algorithms.ECAlgorithm.to_jwk(
                key.public_key(), as_dict=True), "kid": kid, "alg": "ES256"})

    async def main():
        verifier = SekishoTokenVerifier(issuer="https://sekisho.example",
            audience="https://as.example", keys=Keys(), replay_cache=InMemoryReplayCache())
        verified = await verifier.verify(token, client_id="agent")
        assert verified.subject == "alice", verified
        print("\\n".join(sys.modules))

    asyncio.run(main())
""")


def _run(*args: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, ROOT)
    (built,) = out.glob("sekisho-*.whl")
    return built


def _installed(wheel: Path, extra: str, where: Path) -> Path:
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    _run(python, "-m", "pip", "install", "--quiet", "-c", ROOT / "constraints.txt",
         f"sekisho[{extra}] @ {wheel.as_uri()}")  # fmt: skip
    return python


def _foreign_modules(listing: str) -> list[str]:
    return [
        name
        for name in listing.split()
        if name.startswith("sekisho.")
        and not name.startswith(SDK_MODULES)
        and name not in SHARED_PACKAGES
    ]


@pytest.mark.integration
@pytest.mark.parametrize(
    ("extra", "script", "absent"),
    [("client", CLIENT_SCRIPT, NOT_FOR_THE_CLIENT), ("verify", VERIFY_SCRIPT, ())],
    ids=["client", "verify"],
)
def test_sdk_extra_installs_alone_and_works(
    wheel: Path, tmp_path: Path, extra: str, script: str, absent: tuple[str, ...]
) -> None:
    python = _installed(wheel, extra, tmp_path / "venv")
    installed = _run(python, "-m", "pip", "list", "--format=freeze").lower()
    assert [name for name in (*SERVER_ONLY, *absent) if f"{name}==" in installed] == []
    modules = _run(python, "-c", script, cwd=tmp_path)
    assert _foreign_modules(modules) == []
    assert "aiohttp.web" not in modules.split()
    assert [m for m in modules.split() if m.split(".")[0] in absent] == []


def test_sdks_import_no_server_module() -> None:
    """The same check in the development venv, where the server is installed: fast feedback."""
    listing = _run(
        sys.executable, "-c", "import sys, sekisho.client, sekisho.verify; print(*sys.modules)"
    )
    assert _foreign_modules(listing) == []


def test_the_client_alone_loads_neither_the_verifier_nor_aiohttp() -> None:
    """In the development venv everything is installed, so only what `import sekisho.client`
    loads can tell: not sekisho.verify (and through it aiohttp), which sekisho[client] lacks."""
    listing = _run(sys.executable, "-c", "import sys, sekisho.client; print(*sys.modules)")
    assert [m for m in listing.split() if m.startswith(("sekisho.verify", "aiohttp"))] == []
