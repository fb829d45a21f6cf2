"""gRPC connections that never send a byte: how many does the worker still hold 12 s later?
([grpc] handshake_timeout_seconds; grpc core's own default holds them 120 s.) Loopback only.

`base` runs the server code of --base-src, `new` this checkout's; TLS on both listeners as in
handshake_flood.py. 2,000 TCP connections to the gRPC port from 127.0.0.2-65, nothing sent.

    PATH=$PWD/bin:$PATH .venv/bin/python bench/grpc_silent_connections.py --base-src ../base
"""

import argparse
import json
import socket
import tempfile
import time
from pathlib import Path

import handshake_flood
from stack import REPO, Idp, policy_folder, workload

from tests.pki import build_pki

CONNECTIONS = 2000
WAIT = 12.0


def measure(root: Path, idp: Idp, pki: object, name: str, source: str) -> dict[str, object]:
    """Open CONNECTIONS silent connections, wait WAIT seconds, count what the server holds."""
    server = handshake_flood._server(root, idp, name, pki, source)
    try:
        host, port = server.grpc_target.rsplit(":", 1)
        started = time.monotonic()
        held = [
            socket.create_connection((host, int(port)), source_address=(f"127.0.0.{2 + n % 64}", 0))
            for n in range(CONNECTIONS)
        ]
        opened = time.monotonic() - started
        fds_opened = handshake_flood._fds(server)
        time.sleep(WAIT)
        result = {
            "variant": name,
            "open_seconds": round(opened, 2),
            "server_fds_after_open": fds_opened,
            f"server_fds_after_{WAIT:.0f}s": handshake_flood._fds(server),
            f"closed_by_server_after_{WAIT:.0f}s": sum(handshake_flood._closed(c) for c in held),
        }
        for connection in held:
            connection.close()
        return result
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", required=True, help="a checkout of main before the change")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sekisho-grpc-silent-") as tmp:
        root = Path(tmp)
        idp, load = Idp(), workload()
        policy_folder(root, load)
        pki = build_pki(root / "pki")
        for name, source in (("base", args.base_src), ("new", str(REPO))):
            print(json.dumps(measure(root, idp, pki, name, source)), flush=True)
        idp.close()


if __name__ == "__main__":
    main()
