"""Change capture's rows: a watermark per subscription and module, claimed by a
compare-and-set on `version` (the fence) as the keeper claims renewals, and moved only
under that fence in the transaction that appends the window's events."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.capture.models import CaptureCursor
from notifier.capture.records import Watermark
from notifier.capture.scope import covered_modules
from notifier.database.models import STATUS_ACTIVE, STATUS_FAILING, SubscriptionRow
from notifier.events import metrics as events_metrics
from notifier.events.log import EventLog, Logged, NewEvent

# Subscriptions whose changes are read back: those Zoho may still be sending to (a
# failing one is being repaired; its window is read back once it is).
CAPTURED = (STATUS_ACTIVE, STATUS_FAILING)
# last_error values change capture writes start with this, so it clears only its own.
ERROR_PREFIX = "read-back: "


class LostLease(Exception):
    """Another replica took the window over: nothing of this read was written."""


@dataclass(frozen=True)
class Claimed:
    row: Watermark
    fence: int


def floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


class CaptureStore:
    def __init__(self, engine: AsyncEngine, event_log: EventLog) -> None:
        self.engine = engine
        self.log = event_log
        postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if postgres else sqlite.insert

    async def enrol(self, now: datetime) -> int:
        """A cursor per module for each captured subscription that has none yet, its
        watermark at the subscription's creation (Zoho's clock and ours agree to the
        second: the keeper follows the same clock)."""
        c, s = CaptureCursor, SubscriptionRow
        async with self.engine.begin() as conn:
            subs = (
                await conn.execute(
                    select(s.id, s.user_id, s.app_type, s.events, s.created_at)
                    .outerjoin(c, c.subscription_id == s.id)
                    .where(c.subscription_id.is_(None), s.status.in_(CAPTURED))
                )
            ).all()
            rows = [
                {
                    "subscription_id": sub.id, "module": module, "user_id": sub.user_id,
                    "app_type": sub.app_type, "covered_until": floor_second(sub.created_at),
                    "version": 0, "read_at": now, "attempts": 0, "gap_announced": False,
                    "cause": "start",
                }
                for sub in subs
                for module in covered_modules(sub.app_type, json.loads(sub.events))
            ]
            if rows:
                await conn.execute(self._insert(c).on_conflict_do_nothing(), rows)
        return len(rows)

    async def all_due_at(self, at: datetime, cause: str) -> None:
        """At start: every watermark is behind (this replica may have been down). Every
        module is read at `at`, overdue ones too: a read covers only up to its start less
        the settle margin, so the caller passes the moment the gap ended plus that margin
        for the read to reach it (read at once, its last seconds would wait a sweep)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(CaptureCursor).values(read_at=at, cause=cause))

    async def want_at(self, subscription_id: str, at: datetime, cause: str) -> None:
        """A gap the keeper or ingress saw: read the subscription back at `at` (as
        `all_due_at`, the gap's end plus the settle margin), overdue modules too. A read
        already wanted for a gap is not put off again: gaps reported one after another
        must not keep it from ever coming due."""
        c = CaptureCursor
        async with self.engine.begin() as conn:
            await conn.execute(
                update(c)
                .where(c.subscription_id == subscription_id,
                       or_(c.read_at > at, c.cause != cause))
                .values(read_at=at, cause=cause)
            )

    async def due(self, now: datetime, limit: int) -> list[Watermark]:
        c, s = CaptureCursor, SubscriptionRow
        query = (
            select(*c.__table__.columns, s.events, s.created_at,
                   s.return_affected_field_values, s.desk_org_id)
            .join(s, s.id == c.subscription_id)
            .where(
                c.read_at <= now, s.status.in_(CAPTURED),
                or_(c.lease_until.is_(None), c.lease_until <= now),
            )
            .order_by(c.read_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Watermark.of(row) for row in rows]

    async def claim(
        self, rows: Sequence[Watermark], owner: str, until: datetime, now: datetime
    ) -> list[Claimed]:
        c = CaptureCursor
        keys = [(r.subscription_id, r.module, r.version) for r in rows]
        if not keys:
            return []
        async with self.engine.begin() as conn:
            won = (
                await conn.execute(
                    update(c)
                    .where(
                        tuple_(c.subscription_id, c.module, c.version).in_(keys),
                        or_(c.lease_until.is_(None), c.lease_until <= now),
                    )
                    .values(version=c.version + 1, lease_owner=owner, lease_until=until)
                    .returning(c.subscription_id, c.module, c.version)
                )
            ).all()
        fences = {(sub, module): version for sub, module, version in won}
        return [
            Claimed(r, fences[(r.subscription_id, r.module)])
            for r in rows if (r.subscription_id, r.module) in fences
        ]

    async def commit(
        self,
        claimed: Claimed,
        events: Sequence[NewEvent],
        covered_until: datetime,
        received_at: datetime,
        **cursor: Any,
    ) -> list[Logged]:
        """Appends `events` and moves the watermark to `covered_until` (never back) in
        one transaction, under the fence: a replica that lost its lease writes nothing
        (LostLease), so a crash or a takeover mid-read neither loses nor doubles."""
        c, row = CaptureCursor, claimed.row
        async with self.engine.begin() as conn:
            stored = await self.log.append_recovered(conn, events, received_at)
            moved = await conn.execute(
                update(c)
                .where(
                    c.subscription_id == row.subscription_id, c.module == row.module,
                    c.version == claimed.fence,
                )
                # Never back: the fence means nobody moved it since it was read.
                .values(covered_until=max(row.covered_until, covered_until), **cursor)
            )
            if moved.rowcount != 1:
                raise LostLease(f"{row.subscription_id}/{row.module}")
            await self._sync_subscription(conn, row.subscription_id, clear_error=True)
        if stored:
            events_metrics.APPENDED.labels("recovered").inc(len(stored))
        return stored

    async def finish(self, claimed: Claimed, *, error: str | None = None, **cursor: Any) -> bool:
        """Writes the cursor's next state and frees the lease, under the fence; with
        `error`, the subscription's last_error names it. False when the lease was lost."""
        c, row = CaptureCursor, claimed.row
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(c)
                .where(
                    c.subscription_id == row.subscription_id, c.module == row.module,
                    c.version == claimed.fence,
                )
                .values(lease_owner=None, lease_until=None, **cursor)
            )
            if done.rowcount != 1:
                return False
            if error is not None:
                await conn.execute(
                    update(SubscriptionRow)
                    .where(SubscriptionRow.id == row.subscription_id)
                    .values(last_error=(ERROR_PREFIX + error)[:500])
                )
        return True

    async def _sync_subscription(self, conn: Any, subscription_id: str, *,
                                 clear_error: bool) -> None:
        """Subscription.covered_until is the least of its modules' watermarks."""
        c, s = CaptureCursor, SubscriptionRow
        least = (
            select(func.min(c.covered_until)).where(c.subscription_id == subscription_id)
            .scalar_subquery()
        )
        values: dict[str, Any] = {"covered_until": least}
        await conn.execute(update(s).where(s.id == subscription_id).values(**values))
        if clear_error:
            await conn.execute(
                update(s)
                .where(
                    s.id == subscription_id, s.last_error.like(ERROR_PREFIX + "%"),
                    # Only once no module of it is failing any more.
                    ~select(c.subscription_id).where(
                        and_(c.subscription_id == subscription_id, c.failing_reason.is_not(None))
                    ).exists(),
                )
                .values(last_error=None)
            )

    async def clear_error(self, subscription_id: str) -> None:
        """A window read back again: last_error goes once no module of it fails."""
        async with self.engine.begin() as conn:
            await self._sync_subscription(conn, subscription_id, clear_error=True)

    async def summary(self) -> tuple[list[tuple[str, int, datetime]], dict[str, int]]:
        """(subscription, app, least watermark) per captured subscription, and how many
        windows wait per failing reason (open gap windows)."""
        c, s = CaptureCursor, SubscriptionRow
        async with self.engine.connect() as conn:
            lags = (
                await conn.execute(
                    select(c.subscription_id, c.app_type, func.min(c.covered_until))
                    .join(s, s.id == c.subscription_id)
                    .where(s.status.in_(CAPTURED))
                    .group_by(c.subscription_id, c.app_type)
                )
            ).all()
            failing = (
                await conn.execute(
                    select(c.failing_reason, func.count())
                    .where(c.failing_reason.is_not(None))
                    .group_by(c.failing_reason)
                )
            ).all()
        return (
            [(a, b, t) for a, b, t in lags],
            {reason: n for reason, n in failing if reason is not None},
        )
