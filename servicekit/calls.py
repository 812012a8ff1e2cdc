"""What every call of both servers goes through, before and after its handler, one
piece per concern, composed here:

- a request id that is safe to log and forward (servicekit/logs.py),
- malformed request bytes answered INVALID_ARGUMENT (servicekit/malformed.py),
- bounds on server and bidirectional streams (servicekit/streams.py `bounded`),
- metrics that count each call under the code it really ended with
  (servicekit/call_metrics.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

import grpc

from servicekit.call_metrics import Observed
from servicekit.error_status import refuse
from servicekit.errors import ServiceError
from servicekit.logs import request_id, trusted_request_id
from servicekit.malformed import checked, refuse_malformed, tolerant
from servicekit.streams import StreamLimits, StreamSlots, bounded


class RequestContextInterceptor(grpc.aio.ServerInterceptor):
    """`bounded`: the full service names whose server streams `limits` apply to."""

    def __init__(self, limits: StreamLimits | None = None, bounded: Collection[str] = ()
                 ) -> None:
        self.limits = limits
        self.slots = StreamSlots(limits) if limits is not None else None
        self.bounded = frozenset(bounded)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        rid = trusted_request_id(details.invocation_metadata)
        method = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary, method, rid),
                tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.unary_stream:
            service = method.lstrip("/").split("/", 1)[0]
            slots = self.slots if service in self.bounded else None
            timeout = self.limits.write_timeout_seconds if self.limits else None
            return grpc.unary_stream_rpc_method_handler(
                _stream(handler.unary_stream, method, rid, slots, timeout),
                tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.stream_stream:
            # A bidirectional stream (the notifier's Pull): the same bounds on its writes.
            service = method.lstrip("/").split("/", 1)[0]
            slots = self.slots if service in self.bounded else None
            timeout = self.limits.write_timeout_seconds if self.limits else None
            return grpc.stream_stream_rpc_method_handler(
                _stream(handler.stream_stream, method, rid, slots, timeout),
                tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        return handler


def _unary(inner: Callable[..., Any], method: str, rid: str) -> Callable[..., Any]:
    async def unary(req: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
        request_id.set(rid)
        with Observed(method, ctx):
            await refuse_malformed(ctx, req, method)
            return await inner(req, ctx)

    return unary


def _stream(inner: Callable[..., Any], method: str, rid: str, slots: StreamSlots | None,
            timeout: float | None) -> Callable[..., Any]:
    async def stream(req: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
        # A coroutine that writes, not a generator that re-yields: wrapping a
        # stream must not add a generator step to every message it carries.
        request_id.set(rid)
        with Observed(method, ctx):
            await refuse_malformed(ctx, req, method)
            if hasattr(req, "__aiter__"):
                req = checked(req)
            async with bounded(ctx, slots, timeout, method) as target:
                try:
                    await _run(inner(req, target), target)
                except ServiceError as failed:
                    # Raised by the bounded write under a handler that maps no errors itself.
                    await refuse(ctx, failed, method)

    return stream


async def _run(result: Any, target: Any) -> None:
    if hasattr(result, "__aiter__"):
        write = target.write
        async for item in result:
            await write(item)
    else:
        # A handler that writes with context.write (the health Watch does, and
        # ListNotifications) is a coroutine.
        await result
