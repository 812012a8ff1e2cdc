"""What every call of both servers goes through, before and after its handler: a request
id that is safe to log and forward, malformed request bytes answered INVALID_ARGUMENT,
bounds on server streams (servicekit/streams.py), and metrics that count each call under
the code it really ended with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from servicekit import metrics
from servicekit.error_status import abort_with, to_status
from servicekit.errors import InvalidArgument, ServiceError
from servicekit.logs import request_id, trusted_request_id
from servicekit.streams import BoundedContext, BoundedWrites, StreamLimits, StreamSlots

log = logging.getLogger(__name__)


class _Malformed:
    """What the request deserializer hands on for bytes that are not the request message:
    raising there would reach the caller as UNKNOWN with Python's exception text."""

    __slots__ = ("message_type",)

    def __init__(self, message_type: str) -> None:
        self.message_type = message_type

    def error(self) -> InvalidArgument:
        return InvalidArgument(
            [("request", f"not a valid serialized {self.message_type} (malformed protobuf: "
                         "a truncated field, invalid UTF-8 in a string, ...)")]
        )


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    owner = getattr(deserializer, "__self__", None)
    message_type = getattr(getattr(owner, "DESCRIPTOR", None), "full_name", "request message")

    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError:
            return _Malformed(message_type)

    return decode


def _ended_code(ctx: grpc.aio.ServicerContext[Any, Any], error: BaseException | None
                ) -> grpc.StatusCode:
    """The code a call really ended with: a handler cancelled because its caller went
    away (or its deadline passed) returns no code of its own, and is not OK."""
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
                self._unary(handler.unary_unary, method, rid),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.unary_stream:
            service = method.lstrip("/").split("/", 1)[0]
            slots = self.slots if service in self.bounded else None
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method, rid, slots),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        if handler.stream_stream:
            # A bidirectional stream (the notifier's Pull): the same bounds on its writes.
            service = method.lstrip("/").split("/", 1)[0]
            slots = self.slots if service in self.bounded else None
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method, rid, slots),
                _tolerant(handler.request_deserializer),
                handler.response_serializer,
            )
        return handler

    @staticmethod
    def _unary(inner: Callable[..., Any], method: str, rid: str) -> Callable[..., Any]:
        async def unary(req: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> Any:
            request_id.set(rid)
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                if isinstance(req, _Malformed):
                    await _abort(ctx, req.error(), method)
                return await inner(req, ctx)
            except BaseException as exc:
                error = exc
                raise
            finally:
                metrics.observe_rpc(method, _ended_code(ctx, error), time.perf_counter() - started)

        return unary

    def _stream(self, inner: Callable[..., Any], method: str, rid: str,
                slots: StreamSlots | None) -> Callable[..., Any]:
        timeout = self.limits.write_timeout_seconds if self.limits else None

        async def stream(req: Any, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
            # A coroutine that writes, not a generator that re-yields: wrapping a
            # stream must not add a generator step to every message it carries.
            request_id.set(rid)
            started = time.perf_counter()
            error: BaseException | None = None
            peer = ""
            held: StreamSlots | None = None
            writes: BoundedWrites | None = None
            try:
                if isinstance(req, _Malformed):
                    await _abort(ctx, req.error(), method)
                if hasattr(req, "__aiter__"):
                    req = _checked(req)
                target: Any = ctx
                if slots is not None and timeout is not None:
                    peer = ctx.peer()
                    writes = BoundedWrites(ctx, timeout)
                    try:
                        slots.take(peer, writes)
                    except ServiceError as refused:
                        await _abort(ctx, refused, method)
                    held = slots
                    metrics.OPEN_STREAMS.set(slots.open)
                    target = BoundedContext(ctx, writes)
                result = inner(req, target)
                if hasattr(result, "__aiter__"):
                    write = target.write
                    async for item in result:
                        await write(item)
                else:
                    # A handler that writes with context.write (the health Watch
                    # does, and ListNotifications) is a coroutine.
                    await result
            except ServiceError as failed:
                # Raised by the bounded write under a handler that maps no errors itself.
                error = failed
                await _abort(ctx, failed, method)
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if writes is None or not writes.stalled or task is None or task.uncancel():
                    error = exc
                    raise
                # Ended for stalling while its write had just gone through: the
                # cancellation landed at the handler's next await, not in the write.
                error = writes.error()
                await _abort(ctx, error, method)
            except BaseException as exc:
                error = exc
                raise
            finally:
                if writes is not None:
                    writes.close()
                if held is not None and writes is not None:
                    held.release(peer, writes)
                    metrics.OPEN_STREAMS.set(held.open)
                metrics.observe_rpc(method, _ended_code(ctx, error), time.perf_counter() - started)

        return stream


async def _checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """A client stream's requests; a malformed one is the handler's INVALID_ARGUMENT."""
    async for request in requests:
        if isinstance(request, _Malformed):
            raise request.error()
        yield request


async def _abort(ctx: grpc.aio.ServicerContext[Any, Any], error: ServiceError, method: str
                 ) -> None:
    status = to_status(error)
    log.info("rpc %s refused: %s %s", method, status.code.name, error.reason)
    await abort_with(ctx, status)
