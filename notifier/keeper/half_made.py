"""Subscriptions a crash left half-made: the row is written `pending` before Zoho is asked
(Desk checks the webhook URL during the create), and made active once Zoho answered. A
process killed in between leaves a row its owner cannot list and, maybe, a channel or
webhook live at Zoho whose deliveries the ingress refuses (409) meanwhile.

Once such a row is older than `PENDING_GRACE` (a create still in flight is younger:
subscriptions/service.py bounds it), the keeper looks at Zoho: a channel or webhook
that is there as the notifier asked for it (its id, events, our URL with this row's
secret) finishes the subscription, and watchers get a `gap` over the time its
deliveries were refused; anything else of ours is removed at Zoho, and the row is
marked deleted (a Desk delivery to it is then 410, and Desk drops the webhook)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from notifier import app_types
from notifier.app_types import CRM
from notifier.database.models import STATUS_ACTIVE, STATUS_DELETED, STATUS_PENDING, SubscriptionRow
from notifier.keeper import metrics
from notifier.keeper.gaps import Gaps
from notifier.keeper.store import KeeperStore
from notifier.keeper.zoho_side import ZohoSide
from notifier.subscriptions import at_zoho
from notifier.subscriptions.records import Subscription
from servicekit.errors import NotFound

log = logging.getLogger(__name__)
PENDING_GRACE = timedelta(seconds=60)


class HalfMade:
    def __init__(
        self, store: KeeperStore, zoho: ZohoSide, gaps: Gaps, forget: Callable[[str], None]
    ) -> None:
        self._store = store
        self._zoho = zoho
        self._gaps = gaps
        self._forget = forget

    async def due(self, now: datetime, limit: int) -> list[Subscription]:
        """Pending rows older than the grace, oldest first."""
        s = SubscriptionRow
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(
                select(s).where(s.status == STATUS_PENDING, s.created_at <= now - PENDING_GRACE)
                .order_by(s.created_at).limit(limit)
            )).all()
        return [Subscription.of(row) for row in rows]

    async def resolve(self, row: Subscription, now: datetime) -> str:
        """Finishes or removes one half-made subscription; returns which."""
        if row.app_type == CRM:
            outcome = await self._crm(row, now)
        else:
            outcome = await self._desk(row, now)
        self._forget(row.id)
        metrics.REPAIRS.labels(app_types.name(row.app_type), "half_made", outcome).inc()
        log.warning("subscription %s (%s) was left half-made by a crash: %s", row.id,
                    app_types.name(row.app_type), outcome)
        return outcome

    async def _crm(self, row: Subscription, now: datetime) -> str:
        seen = (await self._zoho.crm_channels(row.user_id)).get(row.channel_id)
        if (
            seen is not None
            and seen.events == set(row.events)
            and seen.notify_url == self._zoho.crm_url(row)
            and (seen.expires_at is None or seen.expires_at > now)
        ):
            expires = seen.expires_at.replace(microsecond=0) if seen.expires_at else None
            return await self._finish(row, now, expires_at=expires)
        if seen is not None:
            # Ours by its id and URL, but not as asked: nothing may keep calling for it.
            await self._zoho.n.crm_disable_channels(
                row.user_id, [row.channel_id], self._zoho.call_deadline()
            )
        return await self._remove(row, now)

    async def _desk(self, row: Subscription, now: datetime) -> str:
        prefix = self._zoho.desk_url_prefix(row)
        ours = [hook for hook in (await self._zoho.desk_webhooks(row.user_id)).values()
                if hook.url.startswith(prefix)]
        asked = [
            hook for hook in ours
            if at_zoho.secret_matches(hook.url[len(prefix):], row.secret_digest)
            and hook.is_enabled and set(hook.subscriptions) == set(row.events)
        ]
        kept = asked[0] if asked else None
        for hook in ours:
            if hook is not kept:
                try:
                    await self._zoho.n.desk_delete(row.user_id, hook.id, self._zoho.call_deadline())
                except NotFound:
                    pass  # gone already
        if kept is None:
            return await self._remove(row, now)
        org_id, origin = await self._zoho.n.desk_org_of(row.user_id, self._zoho.call_deadline())
        return await self._finish(
            row, now, zoho_id=kept.id, desk_org_id=org_id,
            jwks_url=at_zoho.desk_jwks_url(origin),
        )

    async def _finish(self, row: Subscription, now: datetime, **values: Any) -> str:
        if not await self._settle(row.id, now, status=STATUS_ACTIVE, last_renewed_time=now,
                                  last_error=None, **values):
            return "settled_elsewhere"
        # Its deliveries were refused from the create until now.
        await self._gaps.emit(row, since=row.created_at, until=now)
        return "finished"

    async def _remove(self, row: Subscription, now: datetime) -> str:
        if not await self._settle(row.id, now, status=STATUS_DELETED, deleted_at=now,
                                  secret_sealed=None):
            return "settled_elsewhere"
        return "removed"

    async def _settle(self, subscription_id: str, now: datetime, **values: Any) -> bool:
        """Only while still pending: another replica's keeper (or the create itself) may
        have settled it since it was read."""
        s = SubscriptionRow
        async with self._store.engine.begin() as conn:
            result = await conn.execute(
                update(s).where(s.id == subscription_id, s.status == STATUS_PENDING)
                .values(updated_at=now, **values)
            )
        return bool(result.rowcount)
