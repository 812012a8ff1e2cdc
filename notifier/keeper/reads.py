"""The keeper's reads: what is due, a user's kept subscriptions, the metrics' summary."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.app_types import CRM, AppType
from notifier.database.models import (
    STATUS_ACTIVE,
    STATUS_FAILING,
    STATUS_REAUTH_REQUIRED,
    SubscriptionRow,
)
from notifier.keeper.models import KeeperSubscription, KeeperUser
from notifier.keeper.records import Kept, KeptUser

KEPT = (STATUS_ACTIVE, STATUS_FAILING, STATUS_REAUTH_REQUIRED)


def _kept_rows() -> Select[
    SubscriptionRow, int, str | None, int, datetime | None, datetime | None
]:
    """A subscription with the keeper's bookkeeping for it (the columns of `Kept`)."""
    k = KeeperSubscription
    return select(SubscriptionRow, k.version, k.lease_owner, k.attempts, k.verified_at,
                  k.renew_at).join(k, k.subscription_id == SubscriptionRow.id)


class KeeperReads:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def due_renewals(self, now: datetime, limit: int) -> list[Kept]:
        k = KeeperSubscription
        s = SubscriptionRow
        query = (
            _kept_rows()
            .where(
                k.app_type == CRM,
                k.renew_at <= now,
                or_(k.lease_until.is_(None), k.lease_until <= now),
                s.status.in_((STATUS_ACTIVE, STATUS_FAILING)),
            )
            .order_by(k.renew_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Kept.of(row) for row in rows]

    async def due_users(self, now: datetime, limit: int) -> list[KeptUser]:
        u = KeeperUser
        query = (
            select(u)
            .where(u.reconcile_at <= now, or_(u.lease_until.is_(None), u.lease_until <= now))
            .order_by(u.reconcile_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [KeptUser.of(row) for row in rows]

    async def user_subscriptions(self, user_id: str, app_type: AppType) -> list[Kept]:
        s = SubscriptionRow
        query = (
            _kept_rows()
            .where(s.user_id == user_id, s.app_type == app_type, s.status.in_(KEPT))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Kept.of(row) for row in rows]

    async def summary(self) -> tuple[dict[str, int], datetime | None]:
        """Subscriptions by status, and the earliest CRM expiry among kept ones."""
        s = SubscriptionRow
        async with self.engine.connect() as conn:
            counts = (
                await conn.execute(
                    select(s.status, func.count()).where(s.status.in_(KEPT)).group_by(s.status)
                )
            ).all()
            soonest = (
                await conn.execute(
                    select(func.min(s.expires_at)).where(
                        and_(s.app_type == CRM, s.status.in_(KEPT))
                    )
                )
            ).scalar()
        return {status: n for status, n in counts}, soonest
