"""Zoho's accounts server: refresh, code exchange and revoke, with Zoho's quirks.

A response is a success only if it carries `access_token`: Zoho answers most
errors with HTTP 200. Failures are sorted into kinds the broker acts on
differently: a dead grant (re-consent), a throttle (wait), a rejected client
(our configuration), and transient trouble (retry, then give up).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from servicekit import bounded_json, identifiers
from servicekit.deadline import Deadline
from servicekit.outbound import GaveUp, ResponseTooLarge, RetryingSender, Transient

T = TypeVar("T")

TOKEN_PATH = "/oauth/v2/token"
REVOKE_PATH = "/oauth/v2/token/revoke"
# Zoho's access tokens live an hour; anything outside this is not a lifetime.
_MAX_LIFETIME = 24 * 3600


class AccountsError(Exception):
    """Messages are safe to show: they never include a token or the client secret."""


class InvalidGrant(AccountsError):
    """invalid_code: the refresh token is revoked or unknown, or the code is spent."""


class ClientRejected(AccountsError):
    """invalid_client / invalid_client_secret: the OAuth client itself was refused."""

    def __init__(self, message: str, zoho_error: str) -> None:
        super().__init__(message)
        self.zoho_error = zoho_error


class Throttled(AccountsError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AccountsUnavailable(AccountsError):
    """5xx, timeout, reset, or an unreadable answer, after every retry."""

    def __init__(self, message: str, *, maybe_minted: bool = False) -> None:
        super().__init__(message)
        # A request that timed out after it was sent may have minted a token:
        # it counts against Zoho's budget even though we never saw the token.
        self.maybe_minted = maybe_minted


def _unusable(message: str) -> Transient:
    """An answer worth asking again for; Zoho answered it, so it minted nothing we count."""
    return Transient(message, may_have_taken_effect=False)


@dataclass(frozen=True)
class AccountsTokenResponse:
    """What Zoho's token endpoint answered (OAuth's token response): a new access token,
    and on a code exchange the refresh token. repr never shows either."""

    access_token: str = field(repr=False)
    expires_in: int
    api_domain: str | None
    scopes: tuple[str, ...]
    refresh_token: str | None = field(default=None, repr=False)


# Zoho's throttle has two wordings, and comes with HTTP 200 or 400.
_THROTTLE_MARKERS = ("too many requests", "throttle", "access denied")
# Zoho blocks the rest of its 10-minute window; without a hint, wait a minute.
DEFAULT_THROTTLE_WAIT = 60.0


def parse_token_response(status: int, text: str) -> AccountsTokenResponse:
    try:
        body: Any = bounded_json.loads(text) if text else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if status >= 500:
            raise _unusable(f"Zoho's token endpoint answered HTTP {status}")
        raise _unusable(f"Zoho's token endpoint answered HTTP {status} with no JSON object")
    token = body.get("access_token")
    if isinstance(token, str) and token:
        return _grant(body)
    # Zoho's words go into logs, the row's last_error and ErrorInfo metadata: only
    # printable ASCII of them (a NUL or a lone surrogate would break the write).
    error = _ascii(body.get("error") or body.get("code"))[:100]
    description = _ascii(body.get("error_description") or body.get("message"))[:200]
    wording = f"{error} {description}".lower()
    if error == "invalid_code":
        raise InvalidGrant("Zoho answered invalid_code: the grant is revoked, spent or unknown")
    if error in {"invalid_client", "invalid_client_secret", "unauthorized_client"}:
        raise ClientRejected(
            f"Zoho rejected the OAuth client ({error}): check ZOHO_CLIENT_ID and "
            "ZOHO_CLIENT_SECRET, and that the grant belongs to this client and data centre",
            error,
        )
    if error in {"invalid_redirect_uri", "invalid_scope", "invalid_request",
                 "unsupported_grant_type"}:
        raise ClientRejected(f"Zoho rejected the request ({error})", error)
    if status == 429 or any(marker in wording for marker in _THROTTLE_MARKERS):
        raise Throttled(
            "Zoho's token throttle: too many access tokens for this refresh token",
            DEFAULT_THROTTLE_WAIT,
        )
    if status >= 500:
        raise _unusable(f"Zoho's token endpoint answered HTTP {status}")
    raise _unusable(
        f"Zoho's token endpoint answered HTTP {status} without access_token"
        + (f" (error {error!r})" if error else "")
    )


def _grant(body: dict[str, Any]) -> AccountsTokenResponse:
    # Legacy answers give expires_in in milliseconds plus expires_in_sec: the latter wins.
    raw = body.get("expires_in_sec", body.get("expires_in"))
    try:
        lifetime = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _unusable("Zoho's token answer has no usable expires_in") from None
    if not 0 < lifetime <= _MAX_LIFETIME:
        raise _unusable(f"Zoho's token answer has an implausible lifetime ({lifetime} s)")
    api_domain = body.get("api_domain")
    scope = body.get("scope")
    refresh = body.get("refresh_token")
    rotated = isinstance(refresh, str) and bool(refresh)
    if not _token_text(body["access_token"]) or (rotated and not _token_text(refresh)):
        raise _unusable("Zoho's token answer holds a token that is not printable ASCII")
    return AccountsTokenResponse(
        access_token=body["access_token"],
        expires_in=lifetime,
        api_domain=api_domain if isinstance(api_domain, str) and api_domain else None,
        scopes=tuple(s for s in scope.replace(",", " ").split() if identifiers.is_scope(s))
        if isinstance(scope, str) else (),
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


def _token_text(value: object) -> bool:
    return isinstance(value, str) and value.isascii() and value.isprintable() and " " not in value


def _ascii(value: object) -> str:
    text = value if isinstance(value, str) else str(value or "")
    # Replaced, not dropped: "invalid_client\x00" must not read as invalid_client.
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in text)


class AccountsClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: str,
        attempt_timeout: float,
        max_attempts: int,
        backoff_base: float = 0.2,
        backoff_cap: float = 2.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.sender = RetryingSender(
            http, max_attempts=max_attempts, attempt_timeout=attempt_timeout,
            backoff_base=backoff_base, backoff_cap=backoff_cap, sleep=sleep,
        )

    async def refresh(
        self, accounts_server: str, refresh_token: str, deadline: Deadline
    ) -> AccountsTokenResponse:
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": refresh_token,
        }
        return await self._token_call(accounts_server, form, deadline, single_use=False)

    async def exchange_code(
        self, accounts_server: str, code: str, redirect_uri: str, deadline: Deadline
    ) -> AccountsTokenResponse:
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        }
        # A code is single-use: once a request may have reached Zoho, resending it
        # would only earn invalid_code, so only unsent requests are retried.
        return await self._token_call(accounts_server, form, deadline, single_use=True)

    async def revoke(self, accounts_server: str, refresh_token: str, deadline: Deadline) -> bool:
        """True if Zoho confirmed; an unknown token counts as revoked already."""

        def classify(response: httpx.Response) -> bool:
            if response.status_code >= 500:
                raise _unusable(f"Zoho's revoke endpoint answered HTTP {response.status_code}")
            try:
                body = bounded_json.loads(response.content)
            except ValueError:
                raise _unusable("Zoho's revoke endpoint answered without JSON") from None
            return isinstance(body, dict) and (
                body.get("status") == "success" or body.get("error") == "invalid_code"
            )

        return await self._send(
            "revoke", accounts_server + REVOKE_PATH, deadline, classify,
            single_use=False, params={"token": refresh_token},
        )

    async def _token_call(
        self, accounts_server: str, form: dict[str, str], deadline: Deadline, *,
        single_use: bool,
    ) -> AccountsTokenResponse:
        # Form body, not query string: secrets stay out of URLs and access logs.
        return await self._send(
            "token", accounts_server + TOKEN_PATH, deadline,
            lambda response: parse_token_response(response.status_code, response.text),
            single_use=single_use, data=form,
        )

    async def _send(
        self, endpoint: str, url: str, deadline: Deadline,
        classify: Callable[[httpx.Response], T], *, single_use: bool, **request: Any,
    ) -> T:
        try:
            return await self.sender.send(
                endpoint, "POST", url, deadline, classify,
                resend_if_taken_effect=not single_use, **request,
            )
        except GaveUp as exc:
            # A request that timed out after it was sent may have minted a token.
            raise AccountsUnavailable(f"Zoho's {endpoint} endpoint: {exc.outcome}",
                                      maybe_minted=exc.may_have_taken_effect) from None
        except ResponseTooLarge as exc:
            raise AccountsUnavailable(
                f"Zoho's {endpoint} endpoint answered too much: {exc}") from None
