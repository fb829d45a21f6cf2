"""The google.rpc ErrorInfo a Sekisho gRPC error carries (docs/architecture.md, error table)."""

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The first detail of `error`'s rich status, as ErrorInfo; fails the test without one."""
    status = rpc_status.from_call(error)
    assert status is not None, "rich status details missing"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info
