"""Server CPU per new HTTP connection the guard refuses (http/listener.py: accept, admit, reset),
against a bare asyncio accept loop that closes every connection (the floor of any listener).

The guard refuses every connection but the first (a per-peer burst of 1, no refill); a client
process on CPU 1 connects and resets `n` times in a row; the server (this process, CPU 0)
reports its own CPU time per connection. Loopback only.

    taskset -c 0 .venv/bin/python bench/connection_refusal_cost.py [N]
"""

import asyncio
import socket
import struct
import sys
import time

from aiohttp import web
from sekisho.clock import SystemClock
from sekisho.config import Settings
from sekisho.protection import build_connection_guard
from sekisho.service_listeners import serve_http

CLIENT = """
import socket, struct, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    s = socket.socket()
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
"""
RESET = struct.pack("ii", 1, 0)


async def _client(port: int, n: int) -> None:
    command = ["taskset", "-c", "1", sys.executable, "-c", CLIENT, str(port), str(n)]
    process = await asyncio.create_subprocess_exec(*command)
    await process.wait()
    await asyncio.sleep(0.2)  # the last ones accepted


async def guarded(n: int) -> float:
    http = {"new_connections_per_second_per_peer": 1e-6, "new_connections_burst_per_peer": 1}
    guard = build_connection_guard(Settings(http=http), SystemClock())
    runner, port = await serve_http(web.Application(), "127.0.0.1:0", guard, None, False, key="-")
    cpu = time.process_time()
    await _client(port, n)
    used = time.process_time() - cpu
    await runner.cleanup()
    return used / max(1, guard.refused)


async def bare(n: int) -> float:
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    closed = 0

    def accept() -> None:
        nonlocal closed
        for _ in range(128):
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            sock.close()
            closed += 1

    loop.add_reader(listener.fileno(), accept)
    cpu = time.process_time()
    await _client(listener.getsockname()[1], n)
    used = time.process_time() - cpu
    loop.remove_reader(listener.fileno())
    listener.close()
    return used / max(1, closed)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    for _ in range(3):  # alternating
        print(f"guard refusal {asyncio.run(guarded(n)) * 1e6:.1f} us", flush=True)
        print(f"bare accept+close {asyncio.run(bare(n)) * 1e6:.1f} us", flush=True)
