"""Subscription rows: written before Zoho is asked (pending), then made active or removed;
read as records (records.py). Their channel tokens are sealed with NOTIFIER_ENCRYPTION_KEY's
ring (load_keys)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.database import DATABASE
from notifier.database.models import (
    STATUS_ACTIVE,
    STATUS_DELETED,
    STATUS_PENDING,
    SubscriptionRow,
)
from notifier.subscriptions.records import Subscription
from servicekit import sealing
from servicekit.errors import TooManySubscriptions

# pg_advisory_xact_lock's first key for the per-user cap (any constant, the same in every
# replica); the second is the user id's hash.
_CAP_LOCK_SPACE = 0x5C_A9


async def _live_count(conn: AsyncConnection, user_id: str) -> int:
    counted = await conn.execute(
        select(func.count()).select_from(SubscriptionRow).where(
            SubscriptionRow.user_id == user_id, SubscriptionRow.status != STATUS_DELETED
        )
    )
    return int(counted.scalar_one())


class NotifierKeyRing(sealing.KeyRing):
    env_var = "NOTIFIER_ENCRYPTION_KEY"


def load_keys(spec: str, database_url: str) -> NotifierKeyRing:
    """The ring from the variable, or for a local SQLite file a generated key file beside
    it, as the broker does."""
    return sealing.load_key_ring(
        NotifierKeyRing, spec, sqlite_path=DATABASE.sqlite_file(database_url),
        sealed_in=("notifier_subscriptions", "secret_sealed"),
    )


class SubscriptionStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def insert(self, *, cap: int | None = None, **values: Any) -> None:
        """With `cap`: TooManySubscriptions, and nothing written, if the user would then
        have more than `cap` live subscriptions. Creates racing in any replica are counted
        one after another: on PostgreSQL under a lock per user, on SQLite under the write
        lock the insert takes (the count comes after it, in the same transaction)."""
        now = datetime.now(UTC)
        values["events"] = json.dumps(list(values["events"]))
        user_id = str(values["user_id"])
        async with self.engine.begin() as conn:
            if cap is not None and self.engine.dialect.name == "postgresql":
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(:space, hashtext(:user))"),
                    {"space": _CAP_LOCK_SPACE, "user": user_id},
                )
            await conn.execute(
                insert(SubscriptionRow).values(created_at=now, updated_at=now, **values)
            )
            if cap is not None and await _live_count(conn, user_id) > cap:
                raise TooManySubscriptions(user_id, cap)  # rolls the insert back

    async def change(self, subscription_id: str, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(SubscriptionRow)
                .where(SubscriptionRow.id == subscription_id)
                .values(updated_at=datetime.now(UTC), **values)
            )

    async def activate(self, subscription_id: str, **values: Any) -> bool:
        """A create's last step: false when the keeper removed the row as half-made
        meanwhile (keeper/half_made.py), which then must not come back to life."""
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(SubscriptionRow)
                .where(SubscriptionRow.id == subscription_id,
                       SubscriptionRow.status.in_((STATUS_PENDING, STATUS_ACTIVE)))
                .values(updated_at=datetime.now(UTC), status=STATUS_ACTIVE, **values)
            )
        return bool(result.rowcount)

    async def remove(self, subscription_id: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(SubscriptionRow).where(SubscriptionRow.id == subscription_id))

    async def count(self, user_id: str) -> int:
        """The user's subscriptions that are not deleted (pending ones too)."""
        async with self.engine.connect() as conn:
            return await _live_count(conn, user_id)

    async def get(self, user_id: str, subscription_id: str) -> Subscription | None:
        """The user's live subscription (deleted ones are not found)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(SubscriptionRow).where(
                        SubscriptionRow.id == subscription_id,
                        SubscriptionRow.user_id == user_id,
                        SubscriptionRow.status != STATUS_DELETED,
                    )
                )
            ).first()
        return None if row is None else Subscription.of(row)

    async def page(self, user_id: str, after: str, limit: int) -> list[Subscription]:
        query = (
            select(SubscriptionRow)
            .where(SubscriptionRow.user_id == user_id, SubscriptionRow.status != STATUS_DELETED)
            .order_by(SubscriptionRow.id)
            .limit(limit)
        )
        if after:
            query = query.where(SubscriptionRow.id > after)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [Subscription.of(row) for row in rows]
