"""The notifier's errors as typed exceptions, one per ErrorInfo reason.

The reasons are servicekit.errors' own (`servicekit.errors.X.reason`), never restated
here; each class says whether retrying can help (`retryable`)."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from servicekit import errors as reasons

__all__ = [
    "BY_REASON",
    "TRANSIENT_CODES",
    "AlreadyExistsError",
    "BackendUnavailableError",
    "ConsumerStalledError",
    "CreditsExhaustedError",
    "CursorExpiredError",
    "DeadlineExceededError",
    "DeskOrgUnresolvedError",
    "InternalError",
    "InvalidArgumentError",
    "MissingScopeError",
    "NotConnectedError",
    "NotFoundError",
    "NotifierError",
    "OriginNotAllowedError",
    "PermissionDeniedError",
    "ReauthRequiredError",
    "TokenUnreadableError",
    "TooManyConsumersError",
    "TooManyStreamsError",
    "TooManySubscriptionsError",
    "TransportError",
    "ZohoBadResponseError",
    "ZohoRejectedError",
    "ZohoThrottledError",
    "ZohoUnavailableError",
    "error_from",
]


class NotifierError(Exception):
    """An RPC failed. `reason` is the ErrorInfo reason ("" when the status had none, as
    for a dropped connection), `metadata` its metadata."""

    reason = ""
    retryable = False

    def __init__(self, code: grpc.StatusCode, message: str, metadata: dict[str, str],
                 retry_after: float | None = None) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.metadata = metadata
        self.retry_after = retry_after


class TransportError(NotifierError):
    """No ErrorInfo: the connection or the server went away (UNAVAILABLE, ...)."""

    retryable = True


class NotConnectedError(NotifierError):
    reason = reasons.NotConnected.reason


class ReauthRequiredError(NotifierError):
    reason = reasons.ReauthRequired.reason


class MissingScopeError(NotifierError):
    reason = reasons.MissingScope.reason


class ZohoThrottledError(NotifierError):
    reason = reasons.ZohoThrottled.reason
    retryable = True


class CreditsExhaustedError(NotifierError):
    """Change capture's read-back budget is spent for now; credits come back with time
    (`retry_after`, from the status's RetryInfo)."""

    reason = reasons.CreditsExhausted.reason
    retryable = True


class ZohoUnavailableError(NotifierError):
    reason = reasons.ZohoUnavailable.reason
    retryable = True


class ZohoBadResponseError(NotifierError):
    reason = reasons.ZohoBadResponse.reason
    retryable = True


class ZohoRejectedError(NotifierError):
    reason = reasons.ZohoRejected.reason


class OriginNotAllowedError(NotifierError):
    reason = reasons.OriginNotAllowed.reason


class InvalidArgumentError(NotifierError):
    reason = reasons.InvalidArgument.reason


class NotFoundError(NotifierError):
    reason = reasons.NotFound.reason


class AlreadyExistsError(NotifierError):
    reason = reasons.AlreadyExists.reason


class TooManyConsumersError(NotifierError):
    reason = reasons.TooManyConsumers.reason


class PermissionDeniedError(NotifierError):
    reason = reasons.PermissionDenied.reason


class DeadlineExceededError(NotifierError):
    reason = reasons.DeadlineExceeded.reason
    retryable = True


class BackendUnavailableError(NotifierError):
    reason = reasons.Unavailable.reason
    retryable = True


class DeskOrgUnresolvedError(NotifierError):
    reason = reasons.DeskOrgUnresolved.reason


class TokenUnreadableError(NotifierError):
    reason = reasons.DecryptError.reason


class CursorExpiredError(NotifierError):
    reason = reasons.CursorExpired.reason


class TooManyStreamsError(NotifierError):
    reason = reasons.TooManyStreams.reason
    retryable = True


class TooManySubscriptionsError(NotifierError):
    """The user has as many subscriptions as allowed (metadata `limit`): delete one
    first; retrying as it is does not help."""

    reason = reasons.TooManySubscriptions.reason


class ConsumerStalledError(NotifierError):
    """The server ended the stream because this side stopped reading: reading again helps."""

    reason = reasons.ConsumerStalled.reason
    retryable = True


class InternalError(NotifierError):
    """The server failed unexpectedly (its log has the request id): worth another try."""

    reason = reasons.ServiceError.reason
    retryable = True


# Codes that, without an ErrorInfo, mean the connection or the server went away.
TRANSIENT_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
})

# Every class above, by its reason. A reason this client has no class for (a newer
# server's) arrives as a plain NotifierError carrying that reason.
BY_REASON: dict[str, type[NotifierError]] = {
    cls.reason: cls for cls in NotifierError.__subclasses__() if cls.reason
}


def error_from(failed: grpc.aio.AioRpcError) -> NotifierError:
    """The typed exception for a failed call."""
    code = failed.code()
    info = None
    retry_after = None
    status = rpc_status.from_call(failed)
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                retry_after = retry.retry_delay.ToTimedelta().total_seconds()
    message = failed.details() or ""
    if info is None:
        if code in TRANSIENT_CODES:
            return TransportError(code, message, {}, retry_after)
        return NotifierError(code, message, {}, retry_after)
    cls = BY_REASON.get(info.reason)
    if cls is None:
        unknown = NotifierError(code, message, dict(info.metadata), retry_after)
        unknown.reason = info.reason
        return unknown
    return cls(code, message, dict(info.metadata), retry_after)
