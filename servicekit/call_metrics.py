"""Every call counted and timed under the code it really ended with, and the ErrorInfo
reason it was refused with (by code alone, a budget refusal, Zoho's throttle and a stream
cap all read RESOURCE_EXHAUSTED)."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from servicekit import metrics
from servicekit.error_status import error_info


def ended_code(ctx: grpc.aio.ServicerContext[Any, Any], error: BaseException | None
               ) -> grpc.StatusCode:
    """A handler cancelled because its caller went away (or its deadline passed)
    returns no code of its own, and is not OK."""
    if isinstance(error, asyncio.CancelledError):
        remaining = ctx.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    code = ctx.code()
    if code is not None:
        return code
    if error is not None and not isinstance(error, grpc.aio.AbortError):
        return grpc.StatusCode.UNKNOWN
    return grpc.StatusCode.OK


def ended_reason(ctx: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The ErrorInfo reason in the status the call was aborted with ("" without one)."""
    for key, value in ctx.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            try:
                info = error_info(status_pb2.Status.FromString(value))
            except DecodeError:
                return ""
            return info.reason if info is not None else ""
    return ""


class Observed:
    """`with Observed(method, ctx):` around a handler: its duration and ended code."""

    __slots__ = ("_ctx", "_method", "_started")

    def __init__(self, method: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        self._method = method
        self._ctx = ctx
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        code = ended_code(self._ctx, error)
        reason = "" if code == grpc.StatusCode.OK else ended_reason(self._ctx)
        metrics.observe_rpc(self._method, code, time.perf_counter() - self._started, reason)
