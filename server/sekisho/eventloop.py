"""`[server] event_loop`: the asyncio event loop `sekisho serve` runs on.

uvloop (libuv) answered 7-20 % more ExchangeToken and health RPCs per CPU second than the
standard loop in `make bench` (bench/results/exchange_throughput.md); "asyncio" is the fallback
for platforms without it. Installed as the process's event loop policy before the first loop is
created, so forked workers (server.workers > 1) inherit it.
"""

import asyncio
from typing import Literal

EventLoop = Literal["uvloop", "asyncio"]


def install(choice: EventLoop) -> None:
    """Make `choice` the loop every later `asyncio.run` in this process (and its forks) uses."""
    if choice == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
