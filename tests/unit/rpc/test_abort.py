"""rpc/status.abort: a call grpc core has already ended is ended as cancelled, not logged as a
failed batch (grpc.aio logs ExecuteBatchError at ERROR with a traceback)."""

import asyncio
from typing import Any

import grpc
import pytest
from grpc._cython import cygrpc
from sekisho.errors import SlowDownError
from sekisho.rpc.status import abort, to_grpc_status


class _Context:
    """abort_with_status as grpc.aio's: raises AbortError, or the batch error when core has
    already ended the call."""

    def __init__(self, core_ended: bool) -> None:
        self.core_ended = core_ended
        self.status: grpc.Status | None = None

    async def abort_with_status(self, status: grpc.Status) -> Any:
        self.status = status
        if self.core_ended:
            raise cygrpc.ExecuteBatchError('Failed "execute_batch"')
        raise grpc.aio.AbortError("Locally aborted.")


STATUS = to_grpc_status(SlowDownError("too little time left before the deadline"), "r-1")


async def test_a_live_call_gets_its_status() -> None:
    context = _Context(core_ended=False)
    with pytest.raises(grpc.aio.AbortError):
        await abort(context, STATUS)  # type: ignore[arg-type]
    assert context.status is STATUS


async def test_a_call_core_already_ended_ends_as_cancelled() -> None:
    context = _Context(core_ended=True)
    with pytest.raises(asyncio.CancelledError):
        await abort(context, STATUS)  # type: ignore[arg-type]
    assert context.status is STATUS
