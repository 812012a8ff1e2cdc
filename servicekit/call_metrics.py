"""Every call counted and timed under the code it really ended with."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any

import grpc

from servicekit import metrics


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
        metrics.observe_rpc(
            self._method, ended_code(self._ctx, error), time.perf_counter() - self._started
        )
