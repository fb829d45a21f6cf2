"""[grpc] as grpc core channel arguments (protection.grpc_options)."""

from sekisho.config import GrpcLimitsConfig
from sekisho.protection import grpc_options


def test_finished_streams_have_headroom_as_large_as_the_stream_limit() -> None:
    """grpc core refuses a new stream while more than max_concurrent_streams + this many are
    allocated, and a finished call's stream stays allocated until the worker frees it: without
    the headroom, closed-loop callers were refused for that race (measured in
    bench/results/acceptors_session14.md, cited by protection.grpc_options)."""
    options = dict(grpc_options(GrpcLimitsConfig(max_concurrent_streams=7)))
    assert options["grpc.max_concurrent_streams"] == 7
    assert options["grpc.http2.max_deallocating_streams"] == 7
