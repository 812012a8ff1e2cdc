"""Handing out access tokens: valid when they leave, refreshed once.

The hot path answers from this process's copy (connection_cache.py). A token inside
the soft window is handed out and refreshed in the background; only one inside the
hard window (or short of a caller's min_ttl) makes callers wait. Refreshes coalesce
per connection in this process (SingleFlight) and across replicas (a fenced lease in
the row), and never exceed Zoho's budget of new tokens per refresh token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from prometheus_client import Counter

from broker import scopes
from broker.config import BrokerConfig
from broker.connection_cache import CACHE, ConnectionCache
from broker.singleflight import SingleFlight
from broker.store import AuditEntry, Connection, ConnectionStore, token_hash
from broker.zoho_accounts import (
    AccountsClient,
    AccountsUnavailable,
    ClientRejected,
    InvalidGrant,
    Throttled,
)
from servicekit.deadline import Deadline
from servicekit.errors import (
    THROTTLE_SOURCE_BUDGET,
    THROTTLE_SOURCE_ZOHO,
    MissingScope,
    NotConnected,
    OriginNotAllowed,
    ReauthRequired,
    ServiceError,
    Unavailable,
    ZohoRejected,
    ZohoThrottled,
    ZohoUnavailable,
)
from servicekit.origins import OriginPolicy
from zoho.common.v1 import common_pb2

log = logging.getLogger(__name__)

REFRESHES = Counter(
    "broker_refreshes_total", "Calls to Zoho's token endpoint", ["reason", "outcome"]
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def replica_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(2)}"


@dataclass(frozen=True)
class IssuedAccessToken:
    """The access token GetToken/RefreshToken hand a caller, with where and till when."""

    access_token: str = field(repr=False)
    api_domain: str
    expires_at: datetime
    scopes: tuple[str, ...]
    desk_org_id: str
    grant_id: str = ""


def _issue(record: Connection) -> IssuedAccessToken:
    assert record.token_expires_at is not None
    return IssuedAccessToken(
        access_token=record.access_token,
        api_domain=record.api_domain,
        expires_at=record.token_expires_at,
        scopes=record.scopes,
        desk_org_id=record.desk_org_id,
        grant_id=record.grant_id,
    )


class TokenService:
    def __init__(
        self,
        store: ConnectionStore,
        accounts: AccountsClient,
        policy: OriginPolicy,
        config: BrokerConfig,
        *,
        replica: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.policy = policy
        self.config = config
        self.replica = replica or replica_name()
        self.clock = clock
        self.cache = ConnectionCache(store, config.cache_seconds)
        # Concurrent refreshes of one connection share one call to Zoho.
        self._refreshes: SingleFlight[Connection] = SingleFlight()

    # -- public --------------------------------------------------------------

    async def get_token(
        self, user_id: str, app_type: int, min_ttl: int, timeout: float | None
    ) -> IssuedAccessToken:
        need = max(self.config.refresh_window_seconds, min_ttl)
        record = await self._current(user_id)
        self._check(record, app_type)
        left = self._seconds_left(record)
        if left >= need:
            if left < self.config.soft_refresh_seconds and left < self._soft_start(user_id):
                self._refresh_in_background(user_id)
            CACHE.labels("memory").inc()
            return _issue(record)
        reason = "window" if left < self.config.refresh_window_seconds else "min_ttl"
        try:
            fresh = await self._refresh(
                user_id, reason, lambda r: self._seconds_left(r) >= need, timeout
            )
        except (ZohoUnavailable, ZohoThrottled, Unavailable, TimeoutError) as exc:
            # Zoho (or our database) is down or throttling, but the token we hold still
            # works: a short-lived token beats an error.
            current = await self._current(user_id)
            if current.active and self._seconds_left(current) > 0:
                log.warning("refresh failed (%s); handing out the unexpired token",
                            getattr(exc, "reason", "deadline"))
                CACHE.labels("degraded").inc()
                return _issue(current)
            if isinstance(exc, TimeoutError):
                raise ZohoUnavailable("the refresh did not finish before the deadline") from None
            raise
        self._check(fresh, app_type)
        return _issue(fresh)

    async def refresh_token(
        self, user_id: str, app_type: int, rejected: str, timeout: float | None
    ) -> IssuedAccessToken:
        # Read the table, not the cache: another replica may have refreshed already.
        record = await self._current(user_id, max_age=0.0)
        self._check(record, app_type)
        if record.access_token != rejected and self._seconds_left(record) > 0:
            return _issue(record)
        try:
            fresh = await self._refresh(
                user_id, "rejected", lambda r: r.access_token != rejected, timeout
            )
        except TimeoutError:
            raise ZohoUnavailable("the refresh did not finish before the deadline") from None
        self._check(fresh, app_type)
        return _issue(fresh)

    def forget(self, user_id: str) -> None:
        """Drops this process's copy (the connection was deleted or replaced)."""
        self.cache.forget(user_id)

    def remember(self, record: Connection) -> None:
        self.cache.remember(record)

    async def close(self) -> None:
        await self.cache.close()
        await self._refreshes.cancel_all()

    async def _current(self, user_id: str, max_age: float | None = None) -> Connection:
        return await self.cache.current(user_id, max_age)

    # -- reading -------------------------------------------------------------

    def _seconds_left(self, record: Connection) -> float:
        if not record.access_token or record.token_expires_at is None:
            return -1.0
        return (record.token_expires_at - self.clock()).total_seconds()

    def _check(self, record: Connection, app_type: int) -> None:
        if not record.active:
            raise ReauthRequired(record.user_id)
        missing = scopes.missing_scope(record.scopes, app_type,
                                       has_desk_org=bool(record.desk_org_id))
        if missing:
            raise MissingScope(missing, user_id=record.user_id,
                               app=common_pb2.AppType.Name(app_type))  # type: ignore[arg-type]

    # -- refreshing ----------------------------------------------------------

    def _soft_start(self, user_id: str) -> float:
        """Seconds before expiry at which this replica refreshes this connection in the
        background: a point of its own (hashed from replica and user) in the first half of
        the soft window, so that tokens minted together are not refreshed by every replica
        at once (why and the figures: docs/performance.md, token economy)."""
        soft, hard = self.config.soft_refresh_seconds, self.config.refresh_window_seconds
        digest = hashlib.blake2b(f"{self.replica}\0{user_id}".encode(), digest_size=4).digest()
        return soft - (soft - hard) / 2 * (int.from_bytes(digest, "big") / 2**32)

    def _refresh_in_background(self, user_id: str) -> None:
        if not self._refreshes.running(user_id):
            soft = self.config.soft_refresh_seconds
            self._refreshes.start(
                user_id,
                lambda: self._refresh_once(
                    user_id, "soft_window", lambda r: self._seconds_left(r) >= soft
                ),
            )

    async def _refresh(
        self,
        user_id: str,
        reason: str,
        good_enough: Callable[[Connection], bool],
        timeout: float | None,
    ) -> Connection:
        """Waits for the one refresh of this connection, starting it if needed.

        A refresh already running serves every waiter, whatever its reason: it
        yields the newest token there can be."""
        return await self._refreshes.do(
            user_id, lambda: self._refresh_once(user_id, reason, good_enough), timeout
        )

    async def _refresh_once(
        self, user_id: str, reason: str, good_enough: Callable[[Connection], bool]
    ) -> Connection:
        # Another replica's lease can have just begun: waiting out one whole lease
        # (and our own turn after it) is the most a refresh can take.
        give_up_at = time.monotonic() + 2 * self.config.lease_seconds
        pause = 0.02
        while True:
            record = await self.store.get(user_id)
            if record is None:
                self.forget(user_id)
                raise NotConnected(user_id)
            self.remember(record)
            if not record.active:
                raise ReauthRequired(record.user_id)
            if good_enough(record):
                return record  # another replica refreshed while we looked
            now = self.clock()
            self._check_budget_window(record, now)
            await self._check_budget(record, now)
            fence = await self.store.try_lease(
                user_id, record.version, self.replica, now, self.config.lease_seconds
            )
            if fence is not None:
                # The lease must outlive the Zoho call, so the call's budget is cut to fit.
                deadline = Deadline(self.config.lease_seconds - 1.0)
                refreshed = await self._refresh_holding(record, fence, reason, deadline)
                if refreshed is not None:
                    return refreshed
                continue  # our lease lapsed and another replica took over: look again
            # Another replica holds the lease (or just wrote): wait for its result.
            if time.monotonic() + pause > give_up_at:
                raise ZohoUnavailable("another replica's refresh of this connection is stuck")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _check_budget_window(self, record: Connection, now: datetime) -> None:
        if record.throttled_until and record.throttled_until > now:
            wait = (record.throttled_until - now).total_seconds()
            raise ZohoThrottled(
                "Zoho throttled new tokens for this connection; retry later",
                retry_after=wait, source=THROTTLE_SOURCE_ZOHO,
            )

    async def _check_budget(self, record: Connection, now: datetime) -> None:
        await self.check_mint_budget(record.refresh_token_hash, now)

    async def check_mint_budget(self, refresh_token_hash: str, now: datetime) -> None:
        """Refuses a call to Zoho's token endpoint for this refresh token once the budget
        of new tokens in the window is spent: refreshes and imports (CreateConnection
        with a refresh_token mints too) count against, and are refused by, this one check."""
        window = timedelta(seconds=self.config.mint_budget_window_seconds)
        mints = await self.store.mints_since(refresh_token_hash, now - window)
        budget = self.config.mint_budget
        if len(mints) >= budget:
            # The budget frees up when the oldest mint that fills it ages out.
            frees_at = mints[-budget] + window
            raise ZohoThrottled(
                f"this connection already got {len(mints)} new tokens from Zoho in the last "
                f"{self.config.mint_budget_window_seconds // 60} minutes (Zoho allows "
                f"{budget}); retry later",
                retry_after=max(1.0, (frees_at - now).total_seconds()),
                source=THROTTLE_SOURCE_BUDGET,
            )

    async def _refresh_holding(
        self, record: Connection, fence: int, reason: str, deadline: Deadline
    ) -> Connection | None:
        """Calls Zoho while holding the lease. Returns the stored result, or None
        if the lease was lost before the write (the caller looks again)."""
        started = time.monotonic()
        user_id = record.user_id

        def audit(outcome: str, detail: str | None = None,
                  access_hash: str | None = None) -> AuditEntry:
            REFRESHES.labels(reason, outcome).inc()
            return AuditEntry(
                user_id=user_id, reason=reason, outcome=outcome,
                latency_ms=int((time.monotonic() - started) * 1000),
                refresh_token_hash=record.refresh_token_hash, replica=self.replica,
                access_token_hash=access_hash, detail=detail,
            )

        async def failed(
            outcome: str, error: ServiceError, *, reauth: bool = False,
            throttled_until: datetime | None = None,
        ) -> ServiceError:
            """Releases the lease with the error recorded; returns the error to raise."""
            await self.store.release_with_error(
                user_id, fence, self.replica, error=error.message, now=self.clock(),
                audit=audit(outcome, error.reason), reauth=reauth,
                throttled_until=throttled_until,
            )
            self.forget(user_id)
            return error

        try:
            grant = await self.accounts.refresh(
                record.accounts_server, record.refresh_token, deadline
            )
            api_domain = self.policy.api_domain(grant.api_domain or record.api_domain)
        except InvalidGrant as exc:
            raise await failed("invalid_code", ReauthRequired(user_id, str(exc)),
                               reauth=True) from None
        except Throttled as exc:
            raise await failed(
                "throttled",
                ZohoThrottled(str(exc), retry_after=exc.retry_after, source=THROTTLE_SOURCE_ZOHO),
                throttled_until=self.clock() + timedelta(seconds=exc.retry_after),
            ) from None
        except ClientRejected as exc:
            raise await failed(
                "rejected", ZohoRejected(str(exc), zoho_code=exc.zoho_error, http_status=200)
            ) from None
        except AccountsUnavailable as exc:
            raise await failed(
                "unknown" if exc.maybe_minted else "unavailable",
                ZohoUnavailable(str(exc), endpoint="token"),
            ) from None
        except OriginNotAllowed:
            raise await failed("bad_response", ZohoUnavailable(
                "Zoho's token answer named an API domain outside the allowed origins",
                endpoint="token",
            )) from None

        now = self.clock()
        won = await self.store.save_refresh(
            user_id, fence, self.replica,
            access_token=grant.access_token,
            expires_at=now + timedelta(seconds=grant.expires_in),
            api_domain=api_domain,
            refresh_token=grant.refresh_token,
            scopes=grant.scopes or None,
            now=now,
            audit=audit("success", access_hash=token_hash(grant.access_token)),
        )
        if not won:
            REFRESHES.labels(reason, "lost_lease").inc()
            log.warning("refresh lease lapsed before the write; the new token was discarded")
            return None
        fresh = await self.store.get(user_id)
        if fresh is None:
            raise NotConnected(user_id)
        self.remember(fresh)
        return fresh
