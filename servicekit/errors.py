"""Domain errors and their one mapping to gRPC statuses.

Every error a caller sees is a google.rpc.Status with an ErrorInfo (AIP-193),
plus BadRequest for malformed requests and RetryInfo where waiting helps.
Servicer methods are wrapped with `@rpc_errors`, so the domain code raises plain
exceptions and never touches the gRPC context.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

log = logging.getLogger(__name__)

ERROR_DOMAIN = "zoho-connect"
# A status travels in trailers, which gRPC caps at 16 KiB: an error echoing a huge
# request value would arrive as a bare RESOURCE_EXHAUSTED with its details lost.
MAX_MESSAGE_CHARS = 1000
MAX_DETAIL_CHARS = 300
MAX_VIOLATIONS = 15


def clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
NOT_CONNECTED_MESSAGE = "Zoho is not connected for this app. Please reconnect."


class ServiceError(Exception):
    """An error with a fixed reason that callers can branch on."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        message = clip(message, MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.metadata = {clip(k, 64): clip(v) for k, v in (metadata or {}).items()}
        self.retry_after = retry_after

    def details(self) -> list[Any]:
        info = error_details_pb2.ErrorInfo(
            reason=self.reason, domain=ERROR_DOMAIN, metadata=self.metadata
        )
        extra: list[Any] = [info]
        if self.retry_after is not None:
            seconds = max(0.0, self.retry_after)
            extra.append(
                error_details_pb2.RetryInfo(
                    retry_delay=duration_pb2.Duration(
                        seconds=int(seconds), nanos=int((seconds % 1) * 1e9)
                    )
                )
            )
        return extra

    def to_status(self) -> grpc.Status:
        return build_status(self.code, self.message, self.details())


class NotConnected(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "NOT_CONNECTED"

    def __init__(self, user_id: str) -> None:
        super().__init__(NOT_CONNECTED_MESSAGE, metadata={"user_id": user_id})


class ReauthRequired(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "REAUTH_REQUIRED"

    def __init__(self, user_id: str, why: str = "Zoho rejected the refresh token") -> None:
        super().__init__(
            f"{why}; the user must connect Zoho again (new consent).",
            metadata={"user_id": user_id},
        )


class MissingScope(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "MISSING_SCOPE"

    def __init__(self, scope: str, *, user_id: str = "", app: str = "") -> None:
        metadata = {"scope": scope}
        if user_id:
            metadata["user_id"] = user_id
        if app:
            metadata["app_type"] = app
        super().__init__(
            f"The Zoho grant lacks the scope {scope}; the user must connect again "
            "and consent to it (an old refresh token never gains new scopes).",
            metadata=metadata,
        )


# ZohoThrottled's metadata.source: who said "too many tokens". Operators (and callers)
# compare against these, never against a literal of their own.
THROTTLE_SOURCE_ZOHO = "zoho"
THROTTLE_SOURCE_BUDGET = "broker_budget"


class ZohoThrottled(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "ZOHO_THROTTLED"

    def __init__(self, message: str, *, retry_after: float, source: str) -> None:
        super().__init__(
            message,
            metadata={"source": source, "retry_after_seconds": str(math.ceil(retry_after))},
            retry_after=retry_after,
        )


class ZohoUnavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "ZOHO_UNAVAILABLE"

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message, metadata={"endpoint": endpoint} if endpoint else None)


class ZohoBadResponse(ServiceError):
    """Zoho answered something we cannot read (not JSON, wrong types, ...)."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "ZOHO_BAD_RESPONSE"

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message, metadata={"endpoint": endpoint} if endpoint else None)


class ZohoRejected(ServiceError):
    """Zoho refused a request for a reason the caller must fix (bad data, no permission)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "ZOHO_REJECTED"

    def __init__(self, message: str, *, zoho_code: str, http_status: int) -> None:
        super().__init__(
            message, metadata={"zoho_code": zoho_code, "http_status": str(http_status)}
        )


class OriginNotAllowed(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "ORIGIN_NOT_ALLOWED"

    def __init__(self, origin: str, field: str) -> None:
        super().__init__(
            f"{field}: {origin!r} is neither a Zoho data centre nor in ZOHO_EXTRA_ORIGINS",
            metadata={"field": field, "origin": origin},
        )
        self.field = field

    def details(self) -> list[Any]:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=self.field, description=self.message
        )
        return [*super().details(), error_details_pb2.BadRequest(field_violations=[violation])]


class InvalidArgument(ServiceError):
    """A malformed request; `violations` names every bad field."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Iterable[tuple[str, str]]) -> None:
        given = list(violations)
        self.violations = [(clip(f, 100), clip(d)) for f, d in given[:MAX_VIOLATIONS]]
        if len(given) > MAX_VIOLATIONS:
            self.violations.append(("...", f"and {len(given) - MAX_VIOLATIONS} more"))
        text = "; ".join(f"{field}: {why}" for field, why in self.violations)
        super().__init__(f"invalid request: {text}")

    def details(self) -> list[Any]:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
                for f, d in self.violations
            ]
        )
        return [*super().details(), bad]


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unavailable(ServiceError):
    """Our own dependency (database, broker) is down: retrying later helps."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "BACKEND_UNAVAILABLE"


class PassthroughError(ServiceError):
    """A status received from another of our services, re-raised unchanged."""

    reason = "PASSTHROUGH"

    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details or "")
        self.status = status

    def to_status(self) -> grpc.Status:
        return self.status


# Streams end on their own (complete, or stalled past the write timeout): a caller
# refused a stream slot can try again soon.
STREAM_SLOT_RETRY_SECONDS = 2.0


class TooManyStreams(ServiceError):
    """Our own cap on open streams, not Zoho's throttle: retry after RetryInfo."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TOO_MANY_STREAMS"

    def __init__(self, scope: str, limit: int) -> None:
        where = "on this connection" if scope == "connection" else "on this server"
        super().__init__(
            f"too many streams open {where} (at most {limit}); retry after RetryInfo",
            metadata={"scope": scope, "limit": str(limit)},
            retry_after=STREAM_SLOT_RETRY_SECONDS,
        )


class ConsumerStalled(ServiceError):
    """The caller did not read what it was sent: the caller stalled, not the service."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "CONSUMER_STALLED"

    def __init__(self, timeout: float, *, preempted_after: float | None = None) -> None:
        """`preempted_after`: ended early, stuck that long while every slot was taken."""
        preempted = preempted_after is not None
        if preempted:
            why = (f"its reader had taken nothing for {preempted_after:g} s while "
                   "every stream slot was in use")
        else:
            why = f"its reader took none of a message for {timeout:g} s"
        super().__init__(
            f"the stream was ended: {why} (read the stream as it arrives)",
            metadata={"write_timeout_seconds": f"{timeout:g}",
                      "preempted": "true" if preempted else "false"},
        )


class Violations:
    """Collects field violations, then raises them all at once."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, why: str) -> None:
        self.items.append((field, why))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def build_status(code: grpc.StatusCode, message: str, details: Iterable[Any]) -> grpc.Status:
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    proto = status_pb2.Status(code=code.value[0], message=message, details=packed)
    return cast(grpc.Status, rpc_status.to_status(proto))


def status_of(error: grpc.aio.AioRpcError) -> grpc.Status:
    """The full status (with details) of an error received from a peer."""
    proto = rpc_status.from_call(cast(Any, error))
    if proto is None:
        return build_status(error.code(), error.details() or "", [])
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


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, ServiceError):
        log.info("rpc %s failed: %s %s", method, exc.to_status().code.name, exc.reason)
        await abort_with(context, exc.to_status())
        return
    log.exception("rpc %s failed unexpectedly", method)
    await abort_with(context, _INTERNAL)


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
        except Exception as exc:
            await _abort(context, exc, name)

    return cast(_Method, unary)
