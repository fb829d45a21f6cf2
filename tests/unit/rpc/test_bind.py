"""A gRPC listener that cannot bind says which setting and why, as a config error (the CLI prints
`sekisho: …`, exit 2), not grpc's bare RuntimeError traceback."""

import contextvars
import socket

import pytest
from sekisho.errors import ConfigError
from sekisho.rpc.server import create_grpc_server
from sekisho.rpc.servicer import TokenExchangeServicer

from tests.bounds import grpc_max_message_bytes
from tests.harness import NO_CLIENT_AUTH, Harness


async def test_a_busy_port_is_a_config_error_naming_the_setting(harness: Harness) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        servicer = TokenExchangeServicer(harness.exchanger, harness.keyring, callers=NO_CLIENT_AUTH)
        with pytest.raises(
            ConfigError, match=r"server\.grpc_listen.*cannot listen on 127\.0\.0\.1"
        ):
            await create_grpc_server(
                servicer,
                listen,
                contextvars.ContextVar("rid"),
                max_message_bytes=grpc_max_message_bytes(),
            )
