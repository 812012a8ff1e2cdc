"""One CRM channel's renewal, under its claimed lease.

A claim taken over from a replica that died (its lease ran out) first asks Zoho what
the channel's expiry is: if the dead replica's PUT landed, the channel is recorded as
renewed instead of renewed twice."""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from typing import Any

from notifier.database.models import STATUS_ACTIVE, STATUS_FAILING, STATUS_REAUTH_REQUIRED
from notifier.keeper import metrics
from notifier.keeper.config import KeeperConfig
from notifier.keeper.gaps import Gaps
from notifier.keeper.outcomes import Kind, describe, kind_of, reason_of, retry_after
from notifier.keeper.store import KeeperStore, renew_at
from notifier.keeper.zoho_side import ZohoSide

log = logging.getLogger(__name__)


class Renewer:
    def __init__(
        self, store: KeeperStore, zoho: ZohoSide, gaps: Gaps, config: KeeperConfig,
        ttl_seconds: float,
    ) -> None:
        self._store = store
        self._zoho = zoho
        self._gaps = gaps
        self._config = config
        self._ttl = timedelta(seconds=ttl_seconds)
        self._before = timedelta(seconds=config.renew_before_seconds)

    def next_due(self, row: Any, expires_at: datetime, now: datetime) -> datetime:
        return max(now, renew_at(row.id, expires_at, self._before, now))

    async def renew(self, row: Any, fence: int, now: datetime, *, took_over: bool) -> str:
        if took_over:
            landed = await self._already_renewed(row, fence, now)
            if landed is not None:
                return landed
        expiry = now + self._ttl
        try:
            # A PUT enables a channel that has gone too: the expiry we knew tells a lapse.
            code = await self._zoho.crm_put(row, expiry)
            lapsed = row.expires_at is not None and row.expires_at <= now
            if code == "NOT_SUBSCRIBED":
                # Expired or deleted at Zoho: enable it again, same id and token.
                lapsed = True
                code = await self._zoho.crm_put(row, expiry, method="POST")
        except Exception as failed:  # every failure is recorded, none is fatal
            return await self._failed(row, fence, now, failed)
        if code is not None:
            return await self._refused(row, fence, now, code)
        done = await self._store.finish(
            row.id, fence,
            {"renew_at": self.next_due(row, expiry, now), "attempts": 0, "verified_at": now},
            {"status": STATUS_ACTIVE, "expires_at": expiry.replace(microsecond=0),
             "last_renewed_time": now, "last_error": None},
            now,
        )
        if not done:
            return "lost_lease"
        if lapsed:
            await self._gaps.emit(row, since=row.verified_at or row.expires_at, until=now)
            metrics.REPAIRS.labels("crm", "missing", "repaired").inc()
            return "recreated"
        return "renewed"

    async def _already_renewed(self, row: Any, fence: int, now: datetime) -> str | None:
        try:
            channels = await self._zoho.crm_channels(row.user_id)
        except Exception:  # then renew as usual
            return None
        seen = channels.get(row.zoho_id)
        if seen is None or seen.expires_at is None or seen.expires_at - now <= self._before:
            return None
        done = await self._store.finish(
            row.id, fence,
            {"renew_at": self.next_due(row, seen.expires_at, now), "attempts": 0,
             "verified_at": now},
            {"status": STATUS_ACTIVE, "expires_at": seen.expires_at, "last_error": None},
            now,
        )
        return "already_renewed" if done else "lost_lease"

    async def _failed(self, row: Any, fence: int, now: datetime, failed: BaseException) -> str:
        kind = kind_of(failed)
        error = describe(failed)
        if kind is Kind.BLOCKED:
            log.warning("renewal of %s blocked: %s", row.id, reason_of(failed))
            await self._store.finish(
                row.id, fence, {"attempts": row.attempts + 1},
                {"status": STATUS_REAUTH_REQUIRED, "last_error": error}, now,
            )
            await self._store.set_status(
                row.user_id, "crm", STATUS_REAUTH_REQUIRED, error, now
            )
            await self._store.block_user(
                row.user_id, "crm", reason_of(failed),
                now + timedelta(seconds=self._config.blocked_probe_seconds),
            )
            return "reauth_required"
        return await self._retry(row, fence, now, error, retry_after(failed))

    async def _refused(self, row: Any, fence: int, now: datetime, code: str) -> str:
        return await self._retry(row, fence, now, f"ZOHO_REJECTED: {code}", None)

    async def _retry(
        self, row: Any, fence: int, now: datetime, error: str, after: float | None
    ) -> str:
        """Backoff, but the next try always comes before the channel expires; FAILING
        only once it actually has."""
        attempts = row.attempts + 1
        base = self._config.retry_base_seconds * 2 ** min(attempts - 1, 16)
        delay = min(self._config.retry_max_seconds, base) * random.uniform(0.5, 1.0)
        if after is not None:
            delay = max(delay, after)
        at = now + timedelta(seconds=delay)
        expires = row.expires_at
        if expires is not None and expires > now and at >= expires:
            # Halfway to the expiry: several more tries fit before it.
            at = now + (expires - now) / 2
        lapsed = expires is None or expires <= now
        await self._store.finish(
            row.id, fence, {"renew_at": at, "attempts": attempts},
            {"status": STATUS_FAILING if lapsed else row.status, "last_error": error}, now,
        )
        log.info("renewal of %s failed (%s); retry in %.0f s", row.id, error, delay)
        return "failing" if lapsed else "retry"
