"""The keeper's rows: enrolment of new subscriptions, claims by CAS on `version` (the
fence), many rows in one statement, and results written only under the fence."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.app_types import CRM, AppType
from notifier.database.models import SubscriptionRow
from notifier.keeper.models import KeeperSubscription, KeeperUser
from notifier.keeper.reads import KEPT, KeeperReads


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


@dataclass
class Outcome:
    """What a renewal pass writes for one claimed row, under its fence."""

    subscription_id: str
    fence: int
    keeper: dict[str, Any]
    subscription: dict[str, Any]


_RELEASE: dict[str, Any] = {"lease_owner": None, "lease_until": None}
_KEYS: dict[type[Any], list[Any]] = {
    KeeperSubscription: [KeeperSubscription.subscription_id],
    KeeperUser: [KeeperUser.user_id, KeeperUser.app_type],
}


async def _fenced(
    conn: AsyncConnection, table: type[KeeperSubscription] | type[KeeperUser],
    rows: Sequence[tuple[Any, ...]], *, free_at: datetime | None = None, **values: Any,
) -> dict[tuple[Any, ...], int]:
    """The compare-and-set on `version` both tables share, for many rows in one statement:
    each row (its primary key, then the version it was read at) is updated only if its
    version is unchanged (and, with free_at, its lease is free). The new version by key."""
    keys = _KEYS[table]
    match = tuple_(*keys, table.version).in_([tuple(r) for r in rows])
    where: list[ColumnElement[bool]] = [match]
    if free_at is not None:
        where.append(or_(table.lease_until.is_(None), table.lease_until <= free_at))
    statement = (
        update(table).where(*where).values(version=table.version + 1, **values)
        .returning(*keys, table.version)
    )
    return {tuple(r[:-1]): r[-1] for r in (await conn.execute(statement)).all()}


class KeeperStore(KeeperReads):
    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
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
                        if row.app_type == CRM
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

    async def claim_rows(
        self, rows: Sequence[tuple[str, int]], owner: str, until: datetime, now: datetime
    ) -> dict[str, int]:
        """One statement for a user's due rows: each row's fence, for those now held."""
        async with self.engine.begin() as conn:
            won = await _fenced(
                conn, KeeperSubscription, rows, free_at=now, lease_owner=owner, lease_until=until
            )
        return {key[0]: version for key, version in won.items()}

    async def finish_rows(self, outcomes: Sequence[Outcome], now: datetime) -> set[str]:
        """Every outcome of a pass in one transaction; those whose fence still held."""
        done: set[str] = set()
        async with self.engine.begin() as conn:
            for o in outcomes:
                if not await _fenced(conn, KeeperSubscription, [(o.subscription_id, o.fence)],
                                     **_RELEASE, **o.keeper):
                    continue
                done.add(o.subscription_id)
                if o.subscription:
                    await conn.execute(
                        update(SubscriptionRow)
                        .where(SubscriptionRow.id == o.subscription_id)
                        .values(updated_at=now, **o.subscription)
                    )
        return done

    async def mark_verified(self, rows: Sequence[tuple[str, int]], now: datetime) -> None:
        """A reconcile's healthy rows (id, version read) in one UPDATE; a row claimed or
        changed since is left to its holder."""
        if rows:
            async with self.engine.begin() as conn:
                await _fenced(conn, KeeperSubscription, rows, free_at=now, verified_at=now)

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

    async def claim_user(
        self, user_id: str, app_type: AppType, version: int, owner: str, until: datetime,
        now: datetime,
    ) -> int | None:
        async with self.engine.begin() as conn:
            won = await _fenced(conn, KeeperUser, [(user_id, app_type, version)], free_at=now,
                                lease_owner=owner, lease_until=until)
        return next(iter(won.values()), None)

    async def finish_user(
        self, user_id: str, app_type: AppType, fence: int, **values: Any
    ) -> bool:
        async with self.engine.begin() as conn:
            won = await _fenced(conn, KeeperUser, [(user_id, app_type, fence)],
                                **_RELEASE, **values)
        return bool(won)

    async def block_user(self, user_id: str, app_type: AppType, reason: str, at: datetime) -> None:
        """Zoho is not called for the user until a probe at the broker succeeds."""
        u = KeeperUser
        async with self.engine.begin() as conn:
            await conn.execute(
                update(u)
                .where(u.user_id == user_id, u.app_type == app_type)
                .values(version=u.version + 1, blocked=reason, reconcile_at=at)
            )

    async def set_status(
        self, user_id: str, app_type: AppType, status: str, last_error: str | None, now: datetime
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
