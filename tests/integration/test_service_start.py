"""The composition root cleans up after itself: a start that fails part way releases what it had
already started (here the gRPC listener, bound before the HTTP one fails), so a supervisor can
retry on the same ports; a started service reports the ports it bound."""

import asyncio
import socket
from pathlib import Path

import pytest
from sekisho.devidp import DevIdentityProvider
from sekisho.service import start_service
from sekisho.signing.filestore import FileKeyStore

from tests.integration.conftest import dev_idp, stack_settings  # noqa: F401 (fixture)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _can_bind(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.mark.integration
async def test_a_failed_start_releases_the_grpc_listener_and_its_tasks(
    tmp_path: Path,
    dev_idp: DevIdentityProvider,  # noqa: F811
) -> None:
    keys_dir = tmp_path / "keys"
    FileKeyStore(keys_dir).init("ES256", 1_800_000_000)
    grpc_port = _free_port()
    with socket.socket() as taken:  # the HTTP port is in use: the last bind fails
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = {
            "grpc_listen": f"127.0.0.1:{grpc_port}",
            "http_listen": f"127.0.0.1:{taken.getsockname()[1]}",
        }
        settings = stack_settings(dev_idp.issuer, keys_dir, server=server)
        before = asyncio.all_tasks()
        with pytest.raises(OSError, match="address already in use"):
            await start_service(settings)
    await asyncio.sleep(0)
    assert _can_bind(grpc_port)
    assert asyncio.all_tasks() - before == set()
