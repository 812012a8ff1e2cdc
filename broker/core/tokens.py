"""Handing out access tokens: valid when they leave, refreshed once.

The hot path answers from this process's copy (connection_cache.py). A token inside
the soft window is handed out and refreshed in the background; only one inside the
hard window (or short of a caller's min_ttl) makes callers wait for the refresher
(refresher.py: one refresh per connection, fenced lease, mint budget).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from broker.config import BrokerConfig
from broker.core.connection_cache import CACHE, ConnectionCache
from broker.core.refresher import Refresher
from broker.storage.records import Connection
from servicekit import scopes
from servicekit.deadline import Deadline
from servicekit.errors import (
    MissingScope,
    ReauthRequired,
    Unavailable,
    ZohoThrottled,
    ZohoUnavailable,
)
from zoho.common.v1 import common_pb2

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        cache: ConnectionCache,
        refresher: Refresher,
        config: BrokerConfig,
        *,
        replica: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.cache = cache
        self.refresher = refresher
        self.config = config
        self.replica = replica
        self.clock = clock

    async def get_token(
        self, user_id: str, app_type: int, min_ttl: int, deadline: Deadline
    ) -> IssuedAccessToken:
        need = max(self.config.refresh_window_seconds, min_ttl)
        record = await self.cache.current(user_id)
        self._check(record, app_type)
        left = self._seconds_left(record)
        if left >= need:
            if left < self.config.soft_refresh_seconds and left < self._soft_start(user_id):
                soft = self.config.soft_refresh_seconds
                self.refresher.start(
                    user_id, "soft_window", lambda r: self._seconds_left(r) >= soft
                )
            CACHE.labels("memory").inc()
            return _issue(record)
        reason = "window" if left < self.config.refresh_window_seconds else "min_ttl"
        try:
            fresh = await self.refresher.refresh(
                user_id, reason, lambda r: self._seconds_left(r) >= need, deadline
            )
        except (ZohoUnavailable, ZohoThrottled, Unavailable, TimeoutError) as exc:
            # Zoho (or our database) is down or throttling, but the token we hold still
            # works: a short-lived token beats an error.
            current = await self.cache.current(user_id)
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
        self, user_id: str, app_type: int, rejected: str, deadline: Deadline
    ) -> IssuedAccessToken:
        # Read the table, not the cache: another replica may have refreshed already.
        record = await self.cache.current(user_id, max_age=0.0)
        self._check(record, app_type)
        if record.access_token != rejected and self._seconds_left(record) > 0:
            return _issue(record)
        try:
            fresh = await self.refresher.refresh(
                user_id, "rejected", lambda r: r.access_token != rejected, deadline
            )
        except TimeoutError:
            raise ZohoUnavailable("the refresh did not finish before the deadline") from None
        self._check(fresh, app_type)
        return _issue(fresh)

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

    def _soft_start(self, user_id: str) -> float:
        """Seconds before expiry at which this replica refreshes this connection in the
        background: its own point (hashed from replica and user) in the first half of the
        soft window, so tokens minted together are not all refreshed at once
        (docs/performance.md, token economy)."""
        soft, hard = self.config.soft_refresh_seconds, self.config.refresh_window_seconds
        digest = hashlib.blake2b(f"{self.replica}\0{user_id}".encode(), digest_size=4).digest()
        return soft - (soft - hard) / 2 * (int.from_bytes(digest, "big") / 2**32)
