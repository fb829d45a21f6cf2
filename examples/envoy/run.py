"""The Envoy gateway example in one command: dev IdP, Sekisho, two MCP stand-ins and Envoy with
the ext_authz filter, all on loopback.

    .venv/bin/python examples/envoy/run.py            # then follow the printed curl commands
    .venv/bin/python examples/envoy/run.py --smoke    # send three requests, check, exit
"""

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sekisho.config import Settings  # noqa: E402
from sekisho.devidp import DevIdentityProvider, create_app  # noqa: E402
from sekisho.service import start_service  # noqa: E402
from sekisho.signing.filestore import FileKeyStore  # noqa: E402

from examples.envoy.stack import (  # noqa: E402
    EnvoyPorts,
    McpStandIn,
    free_port,
    render_config,
    run_envoy,
    serve,
)

HERE = Path(__file__).resolve().parent
AGENT_APP = "agent-app"


def example_settings(idp_issuer: str, keys_dir: Path) -> Settings:
    data: dict[str, Any] = tomllib.loads((HERE / "sekisho.toml").read_text())
    data["policy"]["path"] = str((HERE / data["policy"]["path"]).resolve())
    data["server"] = {
        "grpc_listen": "127.0.0.1:0",
        "http_listen": "127.0.0.1:0",
        "issuer": "https://sekisho.example.com",
        "shutdown_grace_seconds": 1.0,
    }
    data["trust"] = {
        "issuers": [
            {
                "issuer": idp_issuer,
                "discovery_url": f"{idp_issuer}/.well-known/openid-configuration",
                "audiences": [AGENT_APP],
            }
        ]
    }
    data["keys"] = {"dir": str(keys_dir), "watch": False}
    # Any free port, like the listeners above: beside a `make run` (metrics on 9464) too.
    data["metrics"] = {**data.get("metrics", {}), "listen": "127.0.0.1:0"}
    return Settings(**data)


def user_token(idp: DevIdentityProvider, sub: str, groups: list[str]) -> str:
    claims = {
        "sub": sub,
        "aud": AGENT_APP,
        "client_id": AGENT_APP,
        "email": f"{sub}@example.com",
        "groups": groups,
        "tenant": "acme",
    }
    return idp.token(claims, ttl=3600, typ="at+jwt")


async def smoke(base: str, alice: str, bob: str) -> bool:
    """alice reaches both MCP servers with Sekisho tokens; bob (no grant) is refused by Envoy."""
    cases = [("alice", alice, "/crm/mcp", 200), ("alice", alice, "/docs/mcp", 200)]
    cases.append(("bob", bob, "/crm/mcp", 403))
    ok = True
    async with aiohttp.ClientSession() as session:
        for who, token, path, expected in cases:
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(base + path, headers=headers, json={}) as response:
                body = await response.json() if response.status == 200 else {}
                seen = body.get("authorization", "")
                leaked = token in seen
                note = ""
                if seen:
                    note = f"; upstream saw {'THE IDP TOKEN' if leaked else 'a Sekisho token'}"
                print(f"{who:5} POST {path:10} -> {response.status} (expected {expected}){note}")
                ok = ok and response.status == expected and not leaked
    return ok


async def main(port: int, smoke_only: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        idp_port = free_port()
        idp = DevIdentityProvider.open(Path(tmp) / "idp", f"http://127.0.0.1:{idp_port}")
        async with serve(create_app(idp), idp_port):
            FileKeyStore(Path(tmp) / "keys").init("ES256", int(time.time()))
            service = await start_service(example_settings(idp.issuer, Path(tmp) / "keys"))
            try:
                crm, docs = McpStandIn("crm"), McpStandIn("docs")
                async with serve(crm.app()) as crm_port, serve(docs.app()) as docs_port:
                    ports = EnvoyPorts(port, free_port(), service.grpc.port, crm_port, docs_port)
                    with run_envoy(render_config(ports)):
                        return await _run(idp, ports, smoke_only)
            finally:
                await service.stop(1.0)


async def _run(idp: DevIdentityProvider, ports: EnvoyPorts, smoke_only: bool) -> int:
    base = f"http://127.0.0.1:{ports.listen_port}"
    alice = user_token(idp, "alice", ["sales"])
    bob = user_token(idp, "bob", ["interns"])
    if smoke_only:
        return 0 if await smoke(base, alice, bob) else 1
    print(f"Envoy listens on {base} (ext_authz -> Sekisho gRPC 127.0.0.1:{ports.sekisho_port})")
    print(f'alice: curl -X POST -H "Authorization: Bearer {alice}" {base}/crm/mcp')
    print(f'bob:   curl -X POST -H "Authorization: Bearer {bob}" {base}/crm/mcp   # 403')
    print("Ctrl-C stops everything.")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=10000, help="Envoy's listener port")
    parser.add_argument("--smoke", action="store_true", help="send three requests and exit")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main(args.port, args.smoke)))
