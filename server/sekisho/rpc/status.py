"""ServiceError → gRPC status with a google.rpc.ErrorInfo detail (docs/architecture.md §3)."""

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
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
