"""The one mapping of servicekit.errors to gRPC statuses.

Every error a caller sees is a google.rpc.Status with an ErrorInfo (AIP-193),
plus BadRequest for malformed requests and RetryInfo where waiting helps.
Servicer methods are wrapped with `@rpc_errors`, so the domain code raises plain
exceptions and never touches the gRPC context.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import grpc
import psycopg
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from servicekit.errors import ServiceError, Unavailable

log = logging.getLogger(__name__)

ERROR_DOMAIN = "zoho-connect"

_C = grpc.StatusCode
# Each reason's code, as in the README's error table.
CODES: dict[str, grpc.StatusCode] = {
    "NOT_CONNECTED": _C.FAILED_PRECONDITION,
    "REAUTH_REQUIRED": _C.FAILED_PRECONDITION,
    "MISSING_SCOPE": _C.FAILED_PRECONDITION,
    "ZOHO_THROTTLED": _C.RESOURCE_EXHAUSTED,
    "CREDITS_EXHAUSTED": _C.RESOURCE_EXHAUSTED,
    "ZOHO_UNAVAILABLE": _C.UNAVAILABLE,
    "ORIGIN_NOT_ALLOWED": _C.INVALID_ARGUMENT,
    "INVALID_ARGUMENT": _C.INVALID_ARGUMENT,
    "ZOHO_REJECTED": _C.FAILED_PRECONDITION,
    "ZOHO_BAD_RESPONSE": _C.UNAVAILABLE,
    "BACKEND_UNAVAILABLE": _C.UNAVAILABLE,
    "DESK_ORG_UNRESOLVED": _C.FAILED_PRECONDITION,
    "PERMISSION_DENIED": _C.PERMISSION_DENIED,
    "TOO_MANY_STREAMS": _C.RESOURCE_EXHAUSTED,
    "TOO_MANY_SUBSCRIPTIONS": _C.RESOURCE_EXHAUSTED,
    "CONSUMER_STALLED": _C.RESOURCE_EXHAUSTED,
    "TOKEN_UNREADABLE": _C.INTERNAL,
    "CURSOR_EXPIRED": _C.OUT_OF_RANGE,
    "DEADLINE_EXCEEDED": _C.DEADLINE_EXCEEDED,
    "NOT_FOUND": _C.NOT_FOUND,
    "ALREADY_EXISTS": _C.ALREADY_EXISTS,
    "TOO_MANY_CONSUMERS": _C.RESOURCE_EXHAUSTED,
}


class PassthroughError(ServiceError):
    """A status received from another of our services, re-raised unchanged."""

    reason = "PASSTHROUGH"

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details or "")
        self.status = status


def code_of(error: ServiceError) -> grpc.StatusCode:
    if isinstance(error, PassthroughError):
        return error.status.code
    return CODES.get(error.reason, _C.INTERNAL)


def details_of(error: ServiceError) -> list[Any]:
    extra: list[Any] = [
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        )
    ]
    if error.retry_after is not None:
        seconds = max(0.0, error.retry_after)
        extra.append(
            error_details_pb2.RetryInfo(
                retry_delay=duration_pb2.Duration(
                    seconds=int(seconds), nanos=int((seconds % 1) * 1e9)
                )
            )
        )
    violations = error.field_violations()
    if violations:
        extra.append(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in violations
        ]))
    return extra


def to_status(error: ServiceError) -> grpc.Status:
    if isinstance(error, PassthroughError):
        return error.status
    return build_status(code_of(error), error.message, details_of(error))


def build_status(code: grpc.StatusCode, message: str, details: Iterable[Any]) -> grpc.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    proto = status_pb2.Status(code=code.value[0], message=message, details=packed)
    return cast(grpc.Status, rpc_status.to_status(proto))


def error_info(status: status_pb2.Status) -> error_details_pb2.ErrorInfo | None:
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


_INTERNAL = build_status(
    grpc.StatusCode.INTERNAL,
    "internal error; the request id is in the server's log",
    [error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN)],
)

_Method = TypeVar("_Method", bound=Callable[..., Any])


def database_outage(exc: BaseException) -> Unavailable | None:
    """A database down, restarting or unreachable (not a bug, not a constraint): what a
    caller should see is UNAVAILABLE, retry shortly, not INTERNAL with a traceback."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        pass
    elif not isinstance(exc, OperationalError | InterfaceError | PoolTimeout
                        | psycopg.OperationalError):
        return None
    cause = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return Unavailable("the database is unavailable; retry shortly",
                       metadata={"dependency": "database", "error": type(cause).__name__})


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    outage = database_outage(exc)
    if outage is not None:
        # Logged as one line: an outage fails many calls, each would repeat the same trace.
        log.warning("rpc %s failed: the database is unavailable (%s)", method,
                    outage.metadata["error"])
        exc = outage
    if isinstance(exc, ServiceError):
        status = to_status(exc)
        log.info("rpc %s failed: %s %s", method, status.code.name, exc.reason)
        await abort_with(context, status)
        return
    log.exception("rpc %s failed unexpectedly", method)
    await abort_with(context, _INTERNAL)


async def refuse(context: grpc.aio.ServicerContext, error: ServiceError, method: str) -> None:
    """Ends a call the service refused before or around its handler (malformed request,
    no stream slot, a stalled reader), logged as one line."""
    status = to_status(error)
    log.info("rpc %s refused: %s %s", method, status.code.name, error.reason)
    await abort_with(context, status)


# How long ending a call may wait for its status to be taken by the transport.
ABORT_SEND_SECONDS = 1.0


async def abort_with(context: grpc.aio.ServicerContext, status: grpc.Status) -> None:
    """Ends the call with `status`.

    Behind data its reader has not taken (a stalled reader), the status waits in the
    transport (or, behind a message gRPC has not taken yet, is refused outright). The
    call is marked aborted with it all the same (its code is what metrics count) and
    nothing more can be sent; the reader gets the status if it ever reads on, or the
    call goes with its connection. Not waiting for that frees the handler: gRPC re-raises
    the abort itself once the handler returns."""
    try:
        async with asyncio.timeout(ABORT_SEND_SECONDS):
            await context.abort_with_status(status)
    except (grpc.aio.InternalError, TimeoutError):
        log.info("the status waits behind data the reader has not taken (a stalled reader)")


def rpc_errors(method: _Method) -> _Method:
    """Maps domain exceptions raised by a servicer method to gRPC statuses.

    For coroutine methods (streaming ones write rather than yield). An
    unexpected exception becomes INTERNAL with no text of its own, so that
    nothing (a token in an exception message, say) leaks to the caller.
    """
    name = method.__name__

    @functools.wraps(method)
    async def unary(self: Any, request: Any, context: Any) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except grpc.aio.InternalError:
            # A write the transport could not make (a stream not bounded by
            # servicekit/streams.py): the caller's connection is gone, nothing to answer.
            raise asyncio.CancelledError from None
        except Exception as exc:
            await _abort(context, exc, name)

    return cast(_Method, unary)
