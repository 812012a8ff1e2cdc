"""Async client for the sandbox's control API (`/_sandbox/...`), for tests.

    async with SandboxControl("http://127.0.0.1:8780") as sb:
        await sb.reset()
        rt = await sb.add_refresh_token(user="alice", scopes=["ZohoCRM.notifications.READ"],
                                        lifetimes=[122, 3600])
        await sb.fault("token", "status_500", count=2)
        await sb.advance_clock(600)
        assert await sb.mint_count(rt) == 1

Every method raises `SandboxControlError` when the sandbox rejects the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from sandbox.control_client_events import DeliveryRecord, EventsControl
from sandbox.control_client_records import RecordsControl

__all__ = ["Call", "DeliveryRecord", "MintStats", "SandboxControl", "SandboxControlError"]

DEMO_CLIENT_ID = "1000.SANDBOX"
DEMO_CLIENT_SECRET = "sandbox-secret"
DEMO_USER = "demo"
DEMO_REFRESH_TOKEN = "1000.sandbox.demo-refresh"
DEMO_DESK_ORG_ID = "3981311"


class SandboxControlError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox control call failed ({status}): {message}")
        self.status = status


@dataclass(frozen=True)
class Call:
    """One request a Zoho-facing route received."""

    seq: int
    at: float
    route: str
    method: str
    path: str
    authorization: bool
    token: str | None
    org_id: str | None
    grant_type: str | None
    refresh_token: str | None
    status: int | None
    outcome: str | None
    channel_ids: list[str] | None = None


@dataclass(frozen=True)
class MintStats:
    minted_total: int
    minted_in_window: int
    live_access_tokens: list[str]
    revoked: bool


_UNSET: Any = object()


class SandboxControl(EventsControl, RecordsControl):
    """Typed wrapper over the control API. Use as an async context manager, or call `aclose`."""

    def __init__(
        self, origin: str, *, client: httpx.AsyncClient | None = None, timeout: float = 10.0
    ) -> None:
        self.origin = origin.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def __aenter__(self) -> SandboxControl:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    # ---- plumbing ----------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        """Zoho's token endpoint on this sandbox."""
        return f"{self.origin}/oauth/v2/token"

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        payload = None if body is None else {k: v for k, v in body.items() if v is not _UNSET}
        extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        response = await self._client.request(
            method, f"{self.origin}/_sandbox/{path}", json=payload, params=params or None, **extra
        )
        data = response.json()
        if response.status_code != 200:
            raise SandboxControlError(response.status_code, data.get("error", response.text))
        return data

    # ---- lifecycle and clock -----------------------------------------------------------

    async def health(self) -> bool:
        return bool((await self._call("GET", "health"))["ok"])

    async def reset(
        self,
        *,
        demo: bool = True,
        crm_items: int | None = None,
        desk_webhooks: int | None = None,
        records: int | None = None,
    ) -> None:
        """Forget everything (tokens, faults, counters, clock offset, records); re-seed the
        demo tenant unless `demo=False`. Sizes default to the server's `--demo-*` flags;
        `records` per CRM module and of Desk tickets and contacts."""
        await self._call(
            "POST",
            "reset",
            {
                "demo": demo,
                "crm_items": crm_items,
                "desk_webhooks": desk_webhooks,
                "records": records,
            },
        )

    async def now(self) -> float:
        """The sandbox clock (epoch seconds)."""
        return float((await self._call("GET", "clock"))["now"])

    async def advance_clock(self, seconds: float) -> float:
        """Move the sandbox clock forward; returns the new time."""
        return float((await self._call("POST", "clock/advance", {"seconds": seconds}))["now"])

    async def configure(self, **settings: float) -> dict[str, Any]:
        """Change Zoho's limits: mint_limit, mint_window_seconds, max_live_access_tokens,
        max_refresh_tokens_per_user_client, default_lifetime_seconds,
        default_grant_code_ttl_seconds, throttle_status (200 or 400), desk_webhook_limit."""
        result: dict[str, Any] = await self._call("POST", "config", dict(settings))
        return result

    # ---- seeding -----------------------------------------------------------------------

    async def add_client(
        self, client_id: str | None = None, client_secret: str | None = None
    ) -> tuple[str, str]:
        """Register an OAuth client; returns (client_id, client_secret)."""
        data = await self._call(
            "POST", "clients", {"client_id": client_id, "client_secret": client_secret}
        )
        return data["client_id"], data["client_secret"]

    async def add_user(self, user: str, email: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "users", {"user": user, "email": email})
        return result

    async def add_refresh_token(
        self,
        *,
        user: str = DEMO_USER,
        scopes: list[str] | None = None,
        client_id: str = DEMO_CLIENT_ID,
        refresh_token: str | None = None,
        api_origin: str | None = None,
        accounts_origin: str | None = None,
        lifetimes: list[int] | None = None,
        legacy: bool = False,
    ) -> str:
        """Issue a refresh token (created user if new). `scopes` default to the demo scopes;
        `lifetimes` are the access-token lifetimes in seconds, one per mint, the last one
        repeating (`[122, 3600]`); `legacy` answers `expires_in` in ms plus `expires_in_sec`;
        `api_origin` is the api_domain returned (and the only origin its tokens work at)."""
        data = await self._call(
            "POST",
            "refresh_tokens",
            {
                "user": user,
                "scopes": scopes,
                "client_id": client_id,
                "refresh_token": refresh_token,
                "api_origin": api_origin,
                "accounts_origin": accounts_origin,
                "lifetimes": lifetimes,
                "legacy": legacy,
            },
        )
        return str(data["refresh_token"])

    async def grant_code(
        self,
        *,
        user: str = DEMO_USER,
        scopes: list[str] | None = None,
        client_id: str = DEMO_CLIENT_ID,
        redirect_uri: str | None = None,
        ttl_seconds: float | None = None,
        api_origin: str | None = None,
        lifetimes: list[int] | None = None,
        legacy: bool = False,
    ) -> str:
        """A one-time authorization code (default ttl 120 s on the sandbox clock). When
        `redirect_uri` is given, the exchange must repeat it."""
        data = await self._call(
            "POST",
            "grant_codes",
            {
                "user": user,
                "scopes": scopes,
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "ttl_seconds": ttl_seconds,
                "api_origin": api_origin,
                "lifetimes": lifetimes,
                "legacy": legacy,
            },
        )
        return str(data["code"])

    async def seed_crm_channels(
        self,
        user: str = DEMO_USER,
        count: int | None = None,
        *,
        modules: list[str] | None = None,
        first_channel: int | None = None,
        items: list[dict[str, Any]] | None = None,
        replace: bool = False,
    ) -> int:
        """Add `count` generated watch items (consecutive channels, each over every module in
        `modules`), or explicit `items` (POST-shaped watch objects). `replace` empties the
        user's channels first. Returns the user's total item count."""
        body: dict[str, Any] = {"user": user, "replace": replace}
        if items is not None:
            body["items"] = items
        else:
            body.update(count=count, modules=modules, first_channel=first_channel)
        return int((await self._call("POST", "crm/channels", body))["total"])

    async def crm_channels(self, user: str = DEMO_USER) -> list[dict[str, Any]]:
        """Every watch item the user has, in Zoho's order (secrets included)."""
        items: list[dict[str, Any]] = (
            await self._call("POST", "crm/channels/list", {"user": user})
        )["items"]
        return items

    async def add_desk_org(
        self,
        user: str = DEMO_USER,
        *,
        org_id: str | None = None,
        company_name: str | None = None,
        portal_name: str | None = None,
        edition: str | None = None,
    ) -> dict[str, Any]:
        """Create a Desk org (or attach an existing one) for `user`; returns the org JSON."""
        result: dict[str, Any] = await self._call(
            "POST",
            "desk/orgs",
            {
                "user": user,
                "org_id": org_id,
                "company_name": company_name,
                "portal_name": portal_name,
                "edition": edition,
            },
        )
        return result

    async def seed_desk_webhooks(
        self,
        org_id: str = DEMO_DESK_ORG_ID,
        count: int | None = None,
        *,
        items: list[dict[str, Any]] | None = None,
    ) -> list[dict[str, Any]]:
        """Add `count` generated webhooks or explicit `items` (POST-shaped) to an org; returns
        the webhooks made."""
        body: dict[str, Any] = {"org_id": org_id}
        if items is not None:
            body["items"] = items
        else:
            body["count"] = count
        hooks: list[dict[str, Any]] = (await self._call("POST", "desk/webhooks", body))["webhooks"]
        return hooks

    # ---- token state -------------------------------------------------------------------

    async def revoke_refresh_token(self, refresh_token: str) -> bool:
        """Revoke as the user would in Zoho's console; its access tokens die too."""
        data = await self._call("POST", "refresh_tokens/revoke", {"refresh_token": refresh_token})
        return bool(data["revoked"])

    async def invalidate_access_token(self, access_token: str) -> bool:
        """Make one live access token fail with 401 before its expiry."""
        data = await self._call("POST", "access_tokens/invalidate", {"access_token": access_token})
        return bool(data["invalidated"])

    async def access_token_status(self, access_token: str) -> dict[str, Any]:
        """`{"valid": bool, "reason": None|"expired"|"revoked"|"evicted"|"invalidated"|
        "unknown", "expires_at": ..., "scopes": [...]}`."""
        result: dict[str, Any] = await self._call(
            "POST", "access_tokens/status", {"access_token": access_token}
        )
        return result

    async def mint_stats(self, refresh_token: str) -> MintStats:
        data = await self._call("POST", "refresh_tokens/status", {"refresh_token": refresh_token})
        return MintStats(
            minted_total=data["minted_total"],
            minted_in_window=data["minted_in_window"],
            live_access_tokens=[t["access_token"] for t in data["live"]],
            revoked=data["revoked"],
        )

    async def mint_count(self, refresh_token: str) -> int:
        """Access tokens ever minted from this refresh token (since the last reset)."""
        return (await self.mint_stats(refresh_token)).minted_total

    async def mint_count_in_window(self, refresh_token: str) -> int:
        """Mints inside Zoho's rolling 10-minute window ending now (sandbox clock)."""
        return (await self.mint_stats(refresh_token)).minted_in_window

    async def live_access_tokens(self, refresh_token: str) -> list[str]:
        """Unexpired, unevicted access tokens of this refresh token, oldest first."""
        return (await self.mint_stats(refresh_token)).live_access_tokens

    # ---- faults ------------------------------------------------------------------------

    async def fault(
        self,
        route: str,
        kind: str,
        *,
        count: int | None = 1,
        latency_ms: int = 0,
        seconds: float | None = None,
        when: str = "before",
    ) -> dict[str, Any]:
        """Inject a fault on `route` (token, revoke, crm.watch, crm.users, crm.org, desk.orgs,
        desk.webhooks) for the next `count` calls (None: until cleared).

        kind: latency (needs latency_ms), status_500, hang (forever, or `seconds` then answer),
        reset (TCP RST), throttle (token: Zoho's Access Denied body; APIs: 429),
        no_access_token (token only), malformed (truncated JSON), non_json (HTML).
        when="after" runs the real handler first (e.g. mints) and then spoils the answer.
        """
        result: dict[str, Any] = await self._call(
            "POST",
            "faults",
            {
                "route": route,
                "kind": kind,
                "count": count,
                "latency_ms": latency_ms,
                "seconds": seconds,
                "when": when,
            },
        )
        return result

    async def latency(self, route: str, ms: int, *, count: int | None = None) -> dict[str, Any]:
        """Shorthand: add `ms` of latency to `route` (until cleared by default)."""
        return await self.fault(route, "latency", latency_ms=ms, count=count)

    async def faults(self) -> list[dict[str, Any]]:
        faults: list[dict[str, Any]] = (await self._call("GET", "faults"))["faults"]
        return faults

    async def clear_faults(self, route: str | None = None) -> None:
        await self._call("POST", "faults/clear", {"route": route})

    # ---- what Zoho received ------------------------------------------------------------

    async def calls(self, route: str | None = None) -> list[Call]:
        """Requests received by Zoho-facing routes, oldest first (control calls excluded).
        Routes: token, revoke, crm.watch, crm.users, crm.org, crm.unknown, desk.orgs, desk.webhooks,
        desk.unknown, unknown."""
        params = {"route": route} if route else {}
        data = await self._call("GET", "calls", params=params)
        return [Call(**c) for c in data["calls"]]

    async def clear_calls(self) -> None:
        """Forget recorded calls and counters (tokens and mint counts stay)."""
        await self._call("POST", "calls/clear", {})

    async def token_outcomes(self) -> dict[str, int]:
        """Token-endpoint calls by outcome: success, invalid_code, invalid_client,
        invalid_client_secret, invalid_redirect_uri, unsupported_grant_type, throttled,
        fault.<kind>."""
        outcomes: dict[str, int] = (await self._call("GET", "counters"))["token_outcomes"]
        return outcomes

    async def call_counts(self) -> dict[str, int]:
        """Calls per route."""
        counts: dict[str, int] = (await self._call("GET", "counters"))["per_route"]
        return counts
