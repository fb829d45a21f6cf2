"""Wrapped method handlers, built once per method instead of once per call.

grpc.aio asks each interceptor for the method's handler on every call; building the wrapper
there would allocate a handler and a closure per call on the hot path. An interceptor keeps the
wrapper beside the handler grpc gave and reuses it while grpc hands back that same handler.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

# Wrapped handlers kept, one per served method (the method name is the client's, so bounded).
MAX_WRAPPED = 64

Behaviour = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class HandlerCache:
    """method → (the handler grpc gave, its wrapped form), at most `limit` methods."""

    def __init__(self, limit: int = MAX_WRAPPED) -> None:
        self._limit = limit
        self._entries: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def wrapped(
        self,
        method: str,
        handler: grpc.RpcMethodHandler,
        wrap: Callable[[str, grpc.RpcMethodHandler], grpc.RpcMethodHandler],
    ) -> grpc.RpcMethodHandler:
        """`wrap(method, handler)`, built on the first call for `method` (or a new handler)."""
        cached = self._entries.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        built = wrap(method, handler)
        if len(self._entries) < self._limit:
            self._entries[method] = (handler, built)
        return built
