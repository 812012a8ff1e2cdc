"""The keeper's rows: enrolment of new subscriptions, what is due, claims by CAS on
`version` (the fence), and results written only under the fence."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.database.models import (
    STATUS_ACTIVE,
    STATUS_FAILING,
    STATUS_REAUTH_REQUIRED,
    SubscriptionRow,
)
from notifier.keeper.models import KeeperSubscription, KeeperUser

KEPT = (STATUS_ACTIVE, STATUS_FAILING, STATUS_REAUTH_REQUIRED)
Due = Row[Any]


def spread(subscription_id: str, window: timedelta) -> timedelta:
    """A stable offset in [0, window) per subscription: channels created in the same
    second are renewed at different times."""
    fraction = int(hashlib.sha256(subscription_id.encode()).hexdigest()[:8], 16) / 2**32
    return window * fraction


def renew_at(subscription_id: str, expires_at: datetime | None, renew_before: timedelta,
             now: datetime) -> datetime:
    """Inside the renew window, in its first half (the second half is for retries)."""
    if expires_at is None:
        return now
    return expires_at - renew_before + spread(subscription_id, renew_before / 2)


class KeeperStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert

    async def enrol(self, now: datetime, renew_before: timedelta, reconcile: timedelta) -> int:
        """Keeper rows for subscriptions (and users) that have none yet."""
        k = KeeperSubscription
        s = SubscriptionRow
        async with self.engine.begin() as conn:
            new = (
                await conn.execute(
                    select(s.id, s.user_id, s.app_type, s.expires_at, s.last_renewed_time)
                    .outerjoin(k, k.subscription_id == s.id)
                    .where(k.subscription_id.is_(None), s.status.in_(KEPT))
                )
            ).all()
            if not new:
                return 0
            await conn.execute(
                self._insert(k).on_conflict_do_nothing(),
                [
                    {
                        "subscription_id": row.id,
                        "user_id": row.user_id,
                        "app_type": row.app_type,
                        "version": 0,
                        "renew_at": renew_at(row.id, row.expires_at, renew_before, now)
                        if row.app_type == "crm"
                        else None,
                        "attempts": 0,
                        "verified_at": row.last_renewed_time or now,
                    }
                    for row in new
                ],
            )
            users = {(row.user_id, row.app_type) for row in new}
            await conn.execute(
                self._insert(KeeperUser).on_conflict_do_nothing(),
                [
                    {"user_id": u, "app_type": a, "version": 0, "reconcile_at": now + reconcile}
                    for u, a in sorted(users)
                ],
            )
        return len(new)

    async def reconcile_all_now(self, now: datetime) -> None:
        """At start: every user is compared with Zoho once."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(KeeperUser)
                .where(KeeperUser.reconcile_at > now, KeeperUser.blocked.is_(None))
                .values(reconcile_at=now)
            )

    async def due_renewals(self, now: datetime, limit: int) -> Sequence[Due]:
        k = KeeperSubscription
        s = SubscriptionRow
        query = (
            select(s, k.version, k.lease_owner, k.attempts, k.verified_at, k.renew_at)
            .join(k, k.subscription_id == s.id)
            .where(
                k.app_type == "crm",
                k.renew_at <= now,
                or_(k.lease_until.is_(None), k.lease_until <= now),
                s.status.in_((STATUS_ACTIVE, STATUS_FAILING)),
            )
            .order_by(k.renew_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())  # type: ignore[arg-type]

    async def claim(
        self, subscription_id: str, version: int, owner: str, until: datetime, now: datetime
    ) -> int | None:
        """The fence (the new version) if this replica now holds the lease, else None."""
        k = KeeperSubscription
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(k)
                .where(
                    k.subscription_id == subscription_id,
                    k.version == version,
                    or_(k.lease_until.is_(None), k.lease_until <= now),
                )
                .values(version=version + 1, lease_owner=owner, lease_until=until)
            )
        return version + 1 if result.rowcount == 1 else None

    async def finish(
        self,
        subscription_id: str,
        fence: int,
        keeper: dict[str, Any],
        subscription: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Writes a claimed row's outcome if the fence still holds; releases the lease."""
        k = KeeperSubscription
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(k)
                .where(k.subscription_id == subscription_id, k.version == fence)
                .values(version=fence + 1, lease_owner=None, lease_until=None, **keeper)
            )
            if result.rowcount != 1:
                return False
            if subscription:
                await conn.execute(
                    update(SubscriptionRow)
                    .where(SubscriptionRow.id == subscription_id)
                    .values(updated_at=now, **subscription)
                )
        return True

    async def schedule(self, subscription_id: str, **keeper: Any) -> None:
        """Unfenced: only from a user's reconcile, which holds the user's lease."""
        k = KeeperSubscription
        async with self.engine.begin() as conn:
            await conn.execute(
                update(k)
                .where(k.subscription_id == subscription_id)
                .values(version=k.version + 1, **keeper)
            )

    # ---- users ---------------------------------------------------------------------------

    async def due_users(self, now: datetime, limit: int) -> Sequence[Due]:
        u = KeeperUser
        query = (
            select(u)
            .where(u.reconcile_at <= now, or_(u.lease_until.is_(None), u.lease_until <= now))
            .order_by(u.reconcile_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())

    async def claim_user(
        self, user_id: str, app_type: str, version: int, owner: str, until: datetime,
        now: datetime,
    ) -> int | None:
        u = KeeperUser
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(u)
                .where(
                    u.user_id == user_id,
                    u.app_type == app_type,
                    u.version == version,
                    or_(u.lease_until.is_(None), u.lease_until <= now),
                )
                .values(version=version + 1, lease_owner=owner, lease_until=until)
            )
        return version + 1 if result.rowcount == 1 else None

    async def finish_user(
        self, user_id: str, app_type: str, fence: int, **values: Any
    ) -> bool:
        u = KeeperUser
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(u)
                .where(u.user_id == user_id, u.app_type == app_type, u.version == fence)
                .values(version=fence + 1, lease_owner=None, lease_until=None, **values)
            )
        return result.rowcount == 1

    async def block_user(self, user_id: str, app_type: str, reason: str, at: datetime) -> None:
        """Zoho is not called for the user until a probe at the broker succeeds."""
        u = KeeperUser
        async with self.engine.begin() as conn:
            await conn.execute(
                update(u)
                .where(u.user_id == user_id, u.app_type == app_type)
                .values(version=u.version + 1, blocked=reason, reconcile_at=at)
            )

    async def user_subscriptions(self, user_id: str, app_type: str) -> Sequence[Due]:
        k = KeeperSubscription
        s = SubscriptionRow
        query = (
            select(s, k.version, k.lease_owner, k.attempts, k.verified_at, k.renew_at)
            .join(k, k.subscription_id == s.id)
            .where(s.user_id == user_id, s.app_type == app_type, s.status.in_(KEPT))
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())  # type: ignore[arg-type]

    async def set_status(
        self, user_id: str, app_type: str, status: str, last_error: str | None, now: datetime
    ) -> None:
        s = SubscriptionRow
        async with self.engine.begin() as conn:
            await conn.execute(
                update(s)
                .where(s.user_id == user_id, s.app_type == app_type, s.status.in_(KEPT))
                .values(status=status, last_error=last_error, updated_at=now)
            )

    async def change(self, subscription_id: str, now: datetime, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(SubscriptionRow)
                .where(SubscriptionRow.id == subscription_id)
                .values(updated_at=now, **values)
            )

    # ---- metrics -------------------------------------------------------------------------

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
                        and_(s.app_type == "crm", s.status.in_(KEPT))
                    )
                )
            ).scalar()
        return {status: n for status, n in counts}, soonest
