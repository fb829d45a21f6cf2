"""An HTTP listener (public or the metrics admin one) that cannot bind says which setting, as
the gRPC one does (tests/unit/rpc/test_bind.py): before, a second `sekisho serve` on one host
printed only aiohttp's "[Errno 98] error while attempting to bind on address ('127.0.0.1', 9464)"
and the user had to guess that 9464 is `[metrics] listen`."""

import socket

import pytest
from aiohttp import web
from sekisho.clock import SystemClock
from sekisho.config import Settings
from sekisho.errors import ConfigError
from sekisho.protection import build_connection_guard
from sekisho.service_listeners import serve_http


@pytest.mark.parametrize("key", ["server.http_listen", "metrics.listen"])
async def test_a_busy_port_is_a_config_error_naming_the_setting(key: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        guard = build_connection_guard(Settings(), SystemClock())
        with pytest.raises(ConfigError) as raised:
            await serve_http(web.Application(), listen, guard, None, False, key=key)
    assert str(raised.value) == (
        f"config key '{key}': cannot listen on {listen}: address already in use"
        " (another Sekisho running?)"
    )
