"""Every error with a fixed reason that a caller can see, one class per reason (the
README's error table). Plain exceptions: servicekit/error_status.py maps each reason to
its gRPC code and builds the status, so the domain code never touches gRPC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from servicekit.logs import redact

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

    reason: str = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        # A message may echo what Zoho said, and Zoho may echo a URL or token we sent.
        message = clip(redact(message), MAX_MESSAGE_CHARS)
        super().__init__(message)
        self.message = message
        self.metadata = {clip(k, 64): clip(v) for k, v in (metadata or {}).items()}
        self.retry_after = retry_after

    def field_violations(self) -> list[tuple[str, str]]:
        """(field, why) pairs a caller sees as BadRequest; none unless the request is at fault."""
        return []


class NotConnected(ServiceError):
    reason = "NOT_CONNECTED"

    def __init__(self, user_id: str) -> None:
        super().__init__(NOT_CONNECTED_MESSAGE, metadata={"user_id": user_id})


class ReauthRequired(ServiceError):
    reason = "REAUTH_REQUIRED"

    def __init__(self, user_id: str, why: str = "Zoho rejected the refresh token") -> None:
        super().__init__(
            f"{why}; the user must connect Zoho again (new consent).",
            metadata={"user_id": user_id},
        )


class MissingScope(ServiceError):
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
    reason = "ZOHO_THROTTLED"

    def __init__(self, message: str, *, retry_after: float, source: str) -> None:
        super().__init__(
            message,
            metadata={"source": source, "retry_after_seconds": str(math.ceil(retry_after))},
            retry_after=retry_after,
        )


class CreditsExhausted(ServiceError):
    """The notifier's read-back budget (NOTIFIER_RECOVERY_CREDITS_PER_DAY) is spent for
    now, or Zoho's X-API-CREDITS-REMAINING says none are left: a window waits (as a gap
    event's gap_reason and in last_error) until credits come back."""

    reason = "CREDITS_EXHAUSTED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(
            message,
            metadata={"retry_after_seconds": str(math.ceil(retry_after))},
            retry_after=retry_after,
        )


class ZohoUnavailable(ServiceError):
    reason = "ZOHO_UNAVAILABLE"

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message, metadata={"endpoint": endpoint} if endpoint else None)


class ZohoBadResponse(ServiceError):
    """Zoho answered something we cannot read (not JSON, wrong types, ...)."""

    reason = "ZOHO_BAD_RESPONSE"

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message, metadata={"endpoint": endpoint} if endpoint else None)


class ZohoRejected(ServiceError):
    """Zoho refused a request for a reason the caller must fix (bad data, no permission).

    `body`: Zoho's answer, for callers that read it (a CRM bulk write answers 400 with a
    result per item); None when the refusal did not come as an HTTP 4xx."""

    reason = "ZOHO_REJECTED"

    def __init__(
        self, message: str, *, zoho_code: str, http_status: int, body: Any = None
    ) -> None:
        super().__init__(
            message, metadata={"zoho_code": zoho_code, "http_status": str(http_status)}
        )
        self.zoho_code = zoho_code
        self.http_status = http_status
        self.body = body


class OriginNotAllowed(ServiceError):
    reason = "ORIGIN_NOT_ALLOWED"

    def __init__(self, origin: str, field: str) -> None:
        super().__init__(
            f"{field}: {origin!r} is neither a Zoho data centre nor in ZOHO_EXTRA_ORIGINS",
            metadata={"field": field, "origin": origin},
        )
        self.field = field

    def field_violations(self) -> list[tuple[str, str]]:
        return [(self.field, self.message)]


class InvalidArgument(ServiceError):
    """A malformed request; `violations` names every bad field."""

    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Iterable[tuple[str, str]]) -> None:
        given = list(violations)
        self.violations = [(clip(f, 100), clip(d)) for f, d in given[:MAX_VIOLATIONS]]
        if len(given) > MAX_VIOLATIONS:
            self.violations.append(("...", f"and {len(given) - MAX_VIOLATIONS} more"))
        text = "; ".join(f"{field}: {why}" for field, why in self.violations)
        super().__init__(f"invalid request: {text}")

    def field_violations(self) -> list[tuple[str, str]]:
        return self.violations


class NotFound(ServiceError):
    reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    reason = "ALREADY_EXISTS"


class TooManyConsumers(ServiceError):
    """NOTIFIER_MAX_CONSUMERS reached: delete one first (waiting does not help)."""

    reason = "TOO_MANY_CONSUMERS"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"at most {limit} consumers may exist (NOTIFIER_MAX_CONSUMERS); delete one first",
            metadata={"limit": str(limit)},
        )


class PermissionDenied(ServiceError):
    reason = "PERMISSION_DENIED"


class DeadlineExceeded(ServiceError):
    reason = "DEADLINE_EXCEEDED"


class Unavailable(ServiceError):
    """Our own dependency (database, broker) is down: retrying later helps."""

    reason = "BACKEND_UNAVAILABLE"


class DeskOrgUnresolved(ServiceError):
    reason = "DESK_ORG_UNRESOLVED"

    def __init__(self, count: int) -> None:
        super().__init__(
            f"The Zoho Desk account has {count} organisations and none is the default; "
            "set desk_org_id on the broker connection.",
            metadata={"organizations": str(count)},
        )


class DecryptError(ServiceError):
    """A stored value could not be decrypted (wrong key, moved or altered ciphertext).

    The service's own misconfiguration, not the caller's: INTERNAL, but with a reason and
    a message that names the key, never the value. Nothing is written after it."""

    reason = "TOKEN_UNREADABLE"

    def __init__(self, message: str, *, key_id: str = "") -> None:
        super().__init__(message, metadata={"key_id": key_id} if key_id else None)


class CursorExpired(ServiceError):
    reason = "CURSOR_EXPIRED"

    def __init__(self) -> None:
        super().__init__(
            "after_cursor names an event older than the retention "
            "(NOTIFIER_EVENT_RETENTION_SECONDS): events after it may have been pruned; "
            "start again with from_earliest or from now",
            metadata={"field": "after_cursor"},
        )


# Streams end on their own (complete, or stalled past the write timeout): a caller
# refused a stream slot can try again soon.
STREAM_SLOT_RETRY_SECONDS = 2.0


class TooManyStreams(ServiceError):
    """Our own cap on open streams, not Zoho's throttle: retry after RetryInfo."""

    reason = "TOO_MANY_STREAMS"

    def __init__(self, scope: str, limit: int) -> None:
        where = {"connection": "on this connection", "address": "from this address"}.get(
            scope, "on this server")
        super().__init__(
            f"too many streams open {where} (at most {limit}); retry after RetryInfo",
            metadata={"scope": scope, "limit": str(limit)},
            retry_after=STREAM_SLOT_RETRY_SECONDS,
        )


class TooManySubscriptions(ServiceError):
    """A user's cap on subscriptions: each costs the org's Zoho API quota (renewals,
    reconciles), so one caller must not create thousands. Not retryable as it is."""

    reason = "TOO_MANY_SUBSCRIPTIONS"

    def __init__(self, user_id: str, limit: int) -> None:
        super().__init__(
            f"the user has {limit} subscriptions, the most allowed "
            "(NOTIFIER_MAX_SUBSCRIPTIONS_PER_USER): delete one first",
            metadata={"user_id": user_id, "limit": str(limit)},
        )


class ConsumerStalled(ServiceError):
    """The caller did not read what it was sent: the caller stalled, not the service."""

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
