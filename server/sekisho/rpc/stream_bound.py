"""A bound on the calls that stay open: `grpc.health.v1.Health/Watch` and server reflection's
`ServerReflectionInfo` (red team session 13).

Both are served to any client that completes the TLS handshake (off loopback: any certificate
from `server.client_ca_file`, registered as a caller or not), and both run until the client ends
them: a Watch holds a task, a condition wait and grpc core's call state (~24 KB of the worker's
memory: 1,867 of them took a bare server from 35 to 79 MiB), a reflection stream likewise. grpc
core bounds streams per connection ([grpc] max_concurrent_streams), not connections, so nothing
bounded how many a client held open; and a readiness flip wakes every Watch (82.5 ms of the
event loop for those 1,867). Now at most MAX_OPEN_PER_PEER of them per peer address and
MAX_OPEN per worker are open; one more is refused at once with RESOURCE_EXHAUSTED. The unary
Check that probes and Envoy use is not bounded (it ends with its answer). The servicers are
subclassed rather than intercepted so that ExchangeToken calls pass no extra interceptor.
"""

from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from sekisho.admission import peer_address
from sekisho.errors import SlowDownError
from sekisho.rpc.interceptors import request_id_of
from sekisho.rpc.status import abort, to_grpc_status

MAX_OPEN = 1024
MAX_OPEN_PER_PEER = 64


class OpenCalls:
    """How many long-lived calls are open, in all and per peer address."""

    def __init__(self, limit: int = MAX_OPEN, per_peer: int = MAX_OPEN_PER_PEER) -> None:
        self.limit = limit
        self.per_peer = per_peer
        self.open = 0
        self._by_peer: Counter[str] = Counter()

    def admit(self, peer: str) -> bool:
        """Count one more call from `peer`, unless a bound is reached (then False)."""
        if self.open >= self.limit or self._by_peer[peer] >= self.per_peer:
            return False
        self.open += 1
        self._by_peer[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open -= 1
        self._by_peer[peer] -= 1
        if self._by_peer[peer] <= 0:
            del self._by_peer[peer]


async def _admit(calls: OpenCalls, context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The call's peer, counted. Raises: grpc.aio.AbortError (RESOURCE_EXHAUSTED) past a bound."""
    peer = peer_address(context.peer() or "")
    if not calls.admit(peer):
        # A bound's refusal, as every other (errors.py owns its code, rpc/status.py the status).
        refused = SlowDownError("too many open streams")
        await abort(context, to_grpc_status(refused, request_id_of(context)))
    return peer


class BoundedHealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 with Watch calls bounded by `calls`."""

    def __init__(self, calls: OpenCalls) -> None:
        super().__init__()
        self._calls = calls

    async def Watch(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        peer = await _admit(self._calls, context)
        try:
            await super().Watch(request, context)
        finally:
            self._calls.release(peer)


class BoundedReflectionServicer(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """Server reflection (v1alpha, what grpcurl asks) with streams bounded by `calls`."""

    def __init__(self, service_names: tuple[str, ...], calls: OpenCalls) -> None:
        super().__init__(service_names)
        self._calls = calls

    async def ServerReflectionInfo(
        self, request_iterator: AsyncIterable[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        peer = await _admit(self._calls, context)
        try:
            async for response in super().ServerReflectionInfo(request_iterator, context):
                yield response
        finally:
            self._calls.release(peer)
