"""Server interceptors: request id and the single place typed errors become gRPC statuses."""

import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from sekisho.errors import ServerError, ServiceError
from sekisho.identifiers import REQUEST_ID_HEADER, request_id
from sekisho.rpc.handler_cache import Behaviour, HandlerCache
from sekisho.rpc.status import abort, to_grpc_status

log = logging.getLogger(__name__)


def request_id_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The request id of the call's first x-request-id (identifiers.request_id)."""
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str):
            return request_id(value)
    return request_id(None)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps unary handlers: assigns a request id and maps ServiceError to a rich status."""

    def __init__(
        self, request_id_var: contextvars.ContextVar[str], passthrough: frozenset[str] = frozenset()
    ) -> None:
        self._request_id = request_id_var
        # Services that answer every outcome in their own response (ext_authz Check): wrapping
        # them would only add a metadata frame per call on the gateway's hot path.
        self._passthrough = passthrough
        self._wrapped = HandlerCache()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        return self._wrapped.wrapped(handler_call_details.method, handler, self._wrap_handler)

    def _wrap_handler(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if method.rpartition("/")[0].lstrip("/") in self._passthrough:
            return handler  # kept as its own "wrapper": the check runs once per method
        return grpc.unary_unary_rpc_method_handler(
            self._wrap(handler.unary_unary),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap(self, behaviour: Behaviour) -> Behaviour:
        async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id = request_id_of(context)
            self._request_id.set(request_id)
            # In the trailers, which go out with the response and status in one write: sending
            # it as initial metadata forces a frame of its own, ~8 % of a call's CPU (py-spy,
            # bench/results/hot_path.md).
            context.set_trailing_metadata(((REQUEST_ID_HEADER, request_id),))
            try:
                return await behaviour(request, context)
            except ServiceError as error:
                await abort(context, to_grpc_status(error, request_id))
            except grpc.aio.AbortError:
                raise
            except Exception:  # the RPC boundary: a bug becomes INTERNAL, never a stack trace
                log.exception("rpc_internal_error", extra={"request_id": request_id})
                internal = ServerError("internal error")
                await abort(context, to_grpc_status(internal, request_id))

        return wrapped
