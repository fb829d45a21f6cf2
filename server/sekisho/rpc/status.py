"""ServiceError → gRPC status with a google.rpc.ErrorInfo detail (docs/architecture.md §3), and
the one way a call is ended with it (`abort`)."""

import asyncio
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc._cython import cygrpc
from grpc_status import rpc_status

from sekisho.constants import ERROR_DOMAIN
from sekisho.errors import ServerError, ServiceError
from sekisho.identifiers import REQUEST_ID_HEADER


def to_grpc_status(error: ServiceError, request_id: str) -> grpc.Status:
    """The rich status for `error`; INTERNAL carries only a generic message and the request id."""
    code = grpc.StatusCode[error.grpc_code]
    message = error.public_message
    if error.grpc_code == ServerError.grpc_code:  # a bug: nothing of its cause goes out
        message = f"internal error (request id {request_id})"
    # request_id (and decision_id once policy ran) let the caller quote the refusal and an
    # operator find its audit line (`sekisho audit show ID`).
    info = error_details_pb2.ErrorInfo(
        reason=error.reason,
        domain=ERROR_DOMAIN,
        metadata={**error.metadata, "request_id": request_id},
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    rich = rpc_status.to_status(status)
    # abort_with_status replaces the trailers set earlier: the request id goes with the details.
    return _Status(
        rich.code, rich.details, (*rich.trailing_metadata, (REQUEST_ID_HEADER, request_id))
    )


@dataclass(frozen=True)
class _Status(grpc.Status):  # type: ignore[misc]
    """grpc.Status is an interface with these three attributes (grpc_status returns the same)."""

    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


# grpc.aio's error for a batch core would not start; absent from another grpcio: nothing caught.
_BATCH_FAILED: tuple[type[BaseException], ...] = tuple(
    kind for kind in (getattr(cygrpc, "ExecuteBatchError", None),) if isinstance(kind, type)
)


async def abort(context: grpc.aio.ServicerContext[Any, Any], status: grpc.Status) -> NoReturn:
    """End the call with `status` (raises grpc.aio.AbortError, as abort_with_status does).

    A call grpc core has already ended (its deadline passed, or the client reset the stream)
    before the event loop heard of it cannot take a status: sending it fails with
    ExecuteBatchError, which grpc.aio logs at ERROR with a traceback (its own check for a closed
    client comes too late), under load about one short-deadline refusal in 800. The call is over
    either way: it ends as cancelled (asyncio.CancelledError, which grpc.aio logs at DEBUG).
    """
    try:
        await context.abort_with_status(status)
    except _BATCH_FAILED:
        raise asyncio.CancelledError from None
    raise AssertionError("abort_with_status returned")  # pragma: no cover (it always raises)
