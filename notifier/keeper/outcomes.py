"""How the keeper reads a failure: the connection needs the user (stop calling Zoho),
Zoho is busy or down (retry later), or Zoho refused (record it)."""

from __future__ import annotations

from enum import Enum

from google.rpc import status_pb2

from servicekit.error_status import PassthroughError, error_info
from servicekit.errors import ServiceError, Unavailable, ZohoThrottled, ZohoUnavailable

# The broker's reasons after which calling Zoho cannot work until the user reconnects.
BLOCKING = frozenset({"REAUTH_REQUIRED", "MISSING_SCOPE", "NOT_CONNECTED"})


class Kind(Enum):
    BLOCKED = "blocked"
    TRANSIENT = "transient"
    REFUSED = "refused"


def reason_of(error: BaseException) -> str:
    if isinstance(error, PassthroughError):
        try:
            for key, value in error.status.trailing_metadata or ():
                if key == "grpc-status-details-bin":
                    info = error_info(status_pb2.Status.FromString(value))
                    if info is not None:
                        return info.reason
        except Exception:  # an unreadable status is just unknown
            return "PASSTHROUGH"
        return "PASSTHROUGH"
    if isinstance(error, ServiceError):
        return error.reason
    return type(error).__name__


def kind_of(error: BaseException) -> Kind:
    reason = reason_of(error)
    if reason in BLOCKING:
        return Kind.BLOCKED
    if isinstance(error, (ZohoThrottled, ZohoUnavailable, Unavailable, TimeoutError, OSError)):
        return Kind.TRANSIENT
    if reason in ("ZOHO_THROTTLED", "ZOHO_UNAVAILABLE", "BACKEND_UNAVAILABLE",
                  "DEADLINE_EXCEEDED", "ZOHO_BAD_RESPONSE"):
        return Kind.TRANSIENT
    return Kind.REFUSED


def retry_after(error: BaseException) -> float | None:
    return error.retry_after if isinstance(error, ServiceError) else None


def describe(error: BaseException) -> str:
    """For last_error: the reason and a message that never holds a token."""
    message = str(error) if isinstance(error, ServiceError) else type(error).__name__
    return f"{reason_of(error)}: {message}"[:500]
