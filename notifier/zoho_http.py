"""One way to call Zoho, for CRM and Desk alike: the token header, the shared retry loop
(servicekit/outbound.py) within the caller's remaining time, and one classification of
Zoho's answers into typed errors.

The CRM and Desk clients build `ZohoCall`s; nothing else here knows either API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from notifier.config import RetryPolicy
from servicekit import bounded_json
from servicekit.deadline import Deadline
from servicekit.errors import (
    DeadlineExceeded,
    MissingScope,
    ZohoBadResponse,
    ZohoRejected,
    ZohoThrottled,
    ZohoUnavailable,
)
from servicekit.outbound import GaveUp, ResponseTooLarge, RetryingSender, Transient

# CRM says INVALID_TOKEN (sometimes AUTHENTICATION_FAILURE; its notifications spec lists
# AUTHORIZATION_FAILED); Desk says INVALID_OAUTH.
TOKEN_REJECTED_CODES = frozenset(
    {"INVALID_TOKEN", "AUTHENTICATION_FAILURE", "AUTHORIZATION_FAILED", "INVALID_OAUTH"}
)
SCOPE_MISMATCH_CODES = frozenset({"OAUTH_SCOPE_MISMATCH", "SCOPE_MISMATCH"})
_MAX_ZOHO_MESSAGE = 300


class TokenRejected(Exception):
    """Zoho refused the access token: the caller refreshes it through the broker and
    retries once. Never reaches a gRPC caller as such."""

    def __init__(self, zoho_code: str, http_status: int) -> None:
        super().__init__(f"Zoho rejected the access token ({http_status} {zoho_code})")
        self.zoho_code = zoho_code
        self.http_status = http_status


@dataclass(frozen=True)
class ZohoCall:
    app: str  # "crm" or "desk": names the source of a throttle
    endpoint: str  # a metrics label and the name in errors; never a URL with data in it
    method: str
    url: str
    scope: str  # what MISSING_SCOPE names when Zoho says the token lacks a scope
    params: Mapping[str, str] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    json_body: Any = None
    # Whether sending twice is harmless. A POST that creates something is retried only
    # when it surely never left (a refused connection), never after a timeout or a 5xx.
    idempotent: bool = True


@dataclass(frozen=True)
class ZohoReply:
    status: int
    body: Any  # parsed JSON; None for 204, 304 or an empty body
    # X-API-CREDITS-REMAINING, which CRM sends once half the day's credits are spent.
    credits_remaining: int | None = None


class ZohoHttp:
    def __init__(self, client: httpx.AsyncClient, retry: RetryPolicy) -> None:
        self._retry = retry
        self._sender = RetryingSender(
            client,
            max_attempts=retry.max_attempts,
            attempt_timeout=retry.request_timeout_seconds,
            backoff_base=retry.backoff_seconds,
            backoff_cap=retry.max_backoff_seconds,
        )

    async def send(self, call: ZohoCall, access_token: str, deadline: Deadline) -> ZohoReply:
        headers = {**call.headers, "Authorization": f"Zoho-oauthtoken {access_token}"}
        try:
            return await self._sender.send(
                call.endpoint, call.method, call.url, deadline,
                lambda response: self._classify(call, response),
                resend_if_taken_effect=call.idempotent,
                params=call.params, headers=headers, json=call.json_body,
            )
        except GaveUp as failure:
            if failure.out_of_time:
                # The caller's time ran out, not Zoho's allowance: that is the caller's
                # DEADLINE_EXCEEDED, however close gRPC is to noticing it too.
                raise DeadlineExceeded(
                    f"Zoho did not answer {call.endpoint} within the caller's deadline"
                ) from None
            raise ZohoUnavailable(
                f"Zoho did not answer {call.endpoint} after {failure.attempts} attempt(s) "
                f"(last: {failure.outcome}); try again later",
                endpoint=call.endpoint,
            ) from None
        except ResponseTooLarge as exc:
            raise ZohoBadResponse(
                f"Zoho's answer to {call.endpoint} is too large: {exc}", endpoint=call.endpoint
            ) from None

    def _classify(self, call: ZohoCall, response: httpx.Response) -> ZohoReply:
        status = response.status_code
        if status >= 500:
            # A create may have happened before the 5xx: only idempotent calls resend.
            raise Transient(f"HTTP {status}", may_have_taken_effect=True)
        if 200 <= status < 300:
            return ZohoReply(status, _json_or_none(call, response), _credits(response))
        if status == 304:
            # Get Records with If-Modified-Since: nothing changed since (no Location).
            return ZohoReply(status, None, _credits(response))
        if 300 <= status < 400:
            # Redirects are never followed: a token must not travel to a host we did not pick.
            raise ZohoBadResponse(
                f"Zoho answered {call.endpoint} with a redirect ({status})", endpoint=call.endpoint
            )
        body = _error_body(response)
        code = _text(body.get("code")) or _text(body.get("errorCode"))
        message = _text(body.get("message"))[:_MAX_ZOHO_MESSAGE]
        if code in TOKEN_REJECTED_CODES:
            raise TokenRejected(code, status)
        if code in SCOPE_MISMATCH_CODES:
            raise MissingScope(call.scope, app=call.app)
        if status == 429 or code == "TOO_MANY_REQUESTS":
            retry_after = _retry_after(response, body, self._retry.default_retry_after_seconds)
            raise ZohoThrottled(
                f"Zoho's rate limit was reached calling {call.endpoint}; retry after "
                f"{retry_after:.0f}s",
                retry_after=retry_after,
                source=f"zoho-{call.app}",
            )
        raise ZohoRejected(
            f"Zoho refused {call.endpoint}: {status} {code or 'no code'}"
            + (f": {message}" if message else ""),
            zoho_code=code or f"HTTP_{status}",
            http_status=status,
            body=body,
        )


def _json_or_none(call: ZohoCall, response: httpx.Response) -> Any:
    if response.status_code == 204 or not response.content.strip():
        return None
    try:
        return bounded_json.loads(response.content)
    except ValueError:
        raise ZohoBadResponse(
            f"Zoho answered {call.endpoint} with a body that is not JSON", endpoint=call.endpoint
        ) from None


def _credits(response: httpx.Response) -> int | None:
    raw = response.headers.get("X-API-CREDITS-REMAINING", "").strip()
    return int(raw) if raw.isdigit() else None


def _error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = bounded_json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _retry_after(response: httpx.Response, body: dict[str, Any], default: float) -> float:
    """The Retry-After header, else CRM's `details.retry_after` (TOO_MANY_REQUESTS)."""
    details = body.get("details")
    raw: Any = response.headers.get("Retry-After", "").strip()
    if not raw and isinstance(details, dict):
        raw = details.get("retry_after", "")
    if isinstance(raw, bool):
        return default
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        return default
    return seconds if 0 <= seconds <= 86400 else default
