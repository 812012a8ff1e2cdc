"""Consumers' rows: create, read, page, delete, seek, and the expiry hook retention runs.

The hot paths (claiming events for a Pull, applying acks) are in consumers/claims.py.
Every change to a consumer's position or deliveries first updates its row, which on
PostgreSQL locks it (and on SQLite takes the one write lock): claims, acks, seeks and
expiry of one consumer are serialised across replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.database.models import ConsumerDeliveryRow, ConsumerRow, EventRow
from notifier.events.log import EventFilter
from servicekit.errors import AlreadyExists, NotFound, TooManyConsumers

_CREATE_LOCK = 0x4E_43_4F  # serialises creates across replicas, so the cap is exact

C = ConsumerRow
D = ConsumerDeliveryRow
E = EventRow


@dataclass(frozen=True)
class ConsumerState:
    id: str
    user_id: str
    app_type: int
    subscription_id: str
    ack_deadline_seconds: int
    read_through: int
    acked_until: int | None
    generation: int
    expired_count: int
    created_at: datetime

    @property
    def filter(self) -> EventFilter:
        return EventFilter(self.user_id, self.app_type, self.subscription_id)


COLUMNS = (
    C.id, C.user_id, C.app_type, C.subscription_id, C.ack_deadline_seconds, C.read_through,
    C.acked_until, C.generation, C.expired_count, C.created_at,
)


def state(row: Sequence[object]) -> ConsumerState:
    return ConsumerState(*row)  # type: ignore[arg-type]


def event_conditions(event_filter: EventFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if event_filter.user_id:
        conditions.append(E.user_id == event_filter.user_id)
    if event_filter.app_type:
        conditions.append(E.app_type == event_filter.app_type)
    if event_filter.subscription_id:
        conditions.append(E.subscription_id == event_filter.subscription_id)
    return conditions


def not_found(consumer_id: str) -> NotFound:
    return NotFound(f"no consumer {consumer_id!r}", metadata={"consumer_id": consumer_id})


async def lock(conn: AsyncConnection, consumer_id: str) -> ConsumerState:
    """The consumer's row, locked until the transaction ends; NotFound if none."""
    row = (
        await conn.execute(
            update(C).where(C.id == consumer_id).values(generation=C.generation)
            .returning(*COLUMNS)
        )
    ).first()
    if row is None:
        raise not_found(consumer_id)
    return state(row)


async def promote(conn: AsyncConnection, consumer_id: str, keys: Sequence[str] | None) -> None:
    """Marks the lowest remaining row of each record in `keys` (None: every record) as
    its head, after the head was deleted (ack, expiry)."""
    lowest = select(func.min(D.cursor)).where(D.consumer_id == consumer_id)
    if keys is not None:
        if not keys:
            return
        lowest = lowest.where(D.record_key.in_(keys))
    await conn.execute(
        update(D)
        .where(D.consumer_id == consumer_id, D.cursor.in_(lowest.group_by(D.record_key)))
        .values(is_head=True)
    )


class ConsumerStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    async def create(self, consumer: ConsumerState, limit: int) -> None:
        try:
            async with self.engine.begin() as conn:
                if self.postgres:
                    await conn.execute(
                        text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK}
                    )
                count = (await conn.execute(select(func.count()).select_from(C))).scalar_one()
                if count >= limit:
                    raise TooManyConsumers(limit)
                await conn.execute(insert(C).values(
                    id=consumer.id, user_id=consumer.user_id, app_type=consumer.app_type,
                    subscription_id=consumer.subscription_id,
                    ack_deadline_seconds=consumer.ack_deadline_seconds,
                    read_through=consumer.read_through, acked_until=None, generation=0,
                    expired_count=0, created_at=consumer.created_at,
                ))
        except IntegrityError:
            raise AlreadyExists(
                f"a consumer named {consumer.id!r} exists already",
                metadata={"consumer_id": consumer.id},
            ) from None

    async def get(self, consumer_id: str) -> ConsumerState:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(*COLUMNS).where(C.id == consumer_id))).first()
        if row is None:
            raise not_found(consumer_id)
        return state(row)

    async def page(self, after: str, limit: int) -> list[ConsumerState]:
        query = select(*COLUMNS).order_by(C.id).limit(limit)
        if after:
            query = query.where(C.id > after)
        async with self.engine.connect() as conn:
            return [state(row) for row in (await conn.execute(query)).all()]

    async def delete(self, consumer_id: str) -> None:
        async with self.engine.begin() as conn:
            gone = await conn.execute(delete(C).where(C.id == consumer_id))
            if not gone.rowcount:
                raise not_found(consumer_id)
            await conn.execute(delete(D).where(D.consumer_id == consumer_id))

    async def seek(self, consumer_id: str, position: int) -> ConsumerState:
        """Forgets every delivery and reads again after `position`; a new generation."""
        async with self.engine.begin() as conn:
            await lock(conn, consumer_id)
            await conn.execute(delete(D).where(D.consumer_id == consumer_id))
            row = (
                await conn.execute(
                    update(C).where(C.id == consumer_id)
                    .values(read_through=position, acked_until=None, generation=C.generation + 1)
                    .returning(*COLUMNS)
                )
            ).one()
        return state(row)

    async def position_at(self, when: datetime) -> int:
        """The position right before the first event received at or after `when`."""
        async with self.engine.connect() as conn:
            first = (
                await conn.execute(select(func.min(E.cursor)).where(E.received_at >= when))
            ).scalar()
            if first is not None:
                return int(first) - 1
            newest = (await conn.execute(select(func.max(E.cursor)))).scalar()
        return int(newest or 0)

    async def delivery_counts(self, consumer: ConsumerState) -> tuple[int, datetime | None]:
        """(rows not acknowledged, the oldest one's received_at). Every row is above
        acked_until: the scan starts there, not among the index entries of rows acks
        deleted (dead until vacuum)."""
        async with self.engine.connect() as conn:
            count, oldest = (
                await conn.execute(
                    select(func.count(), func.min(D.received_at))
                    .where(D.consumer_id == consumer.id, D.cursor > (consumer.acked_until or 0))
                )
            ).one()
        return int(count), oldest

    async def all_delivery_counts(self) -> dict[str, tuple[int, datetime | None]]:
        """delivery_counts of every consumer holding rows, in one query."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(D.consumer_id, func.count(), func.min(D.received_at))
                    .group_by(D.consumer_id)
                )
            ).all()
        return {consumer_id: (int(count), oldest) for consumer_id, count, oldest in rows}

    async def count_events(self, event_filter: EventFilter, after: int, through: int) -> int:
        """Matching events in (after, through]: an indexed range, not the whole log."""
        if through <= after:
            return 0
        query = select(func.count()).select_from(E).where(
            E.cursor > after, E.cursor <= through, *event_conditions(event_filter)
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def first_received(self, event_filter: EventFilter, after: int) -> datetime | None:
        query = (
            select(E.received_at).where(E.cursor > after, *event_conditions(event_filter))
            .order_by(E.cursor).limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).scalar()

    async def expire(self, conn: AsyncConnection, last: int) -> int:

        """Retention is about to delete every event at or below `last` (in `conn`'s
        transaction, before the delete): each consumer counts what it had not had
        acknowledged there in `expired_count` and moves past it. Returns the total."""
        total = 0
        counted: dict[tuple[EventFilter, int], int] = {}
        ids = (
            await conn.execute(select(C.id).where(C.read_through < last).union(
                select(D.consumer_id).where(D.cursor <= last)
            ))
        ).scalars().all()
        for consumer_id in sorted(ids):
            consumer = await lock(conn, consumer_id)
            dropped = await conn.execute(
                delete(D).where(D.consumer_id == consumer_id, D.cursor <= last)
            )
            unread = 0
            if consumer.read_through < last:
                # Consumers with the same filters and position (idle ones made together)
                # share one count.
                key = (consumer.filter, consumer.read_through)
                if key not in counted:
                    counted[key] = (await conn.execute(
                        select(func.count()).select_from(E).where(
                            E.cursor > consumer.read_through, E.cursor <= last,
                            *event_conditions(consumer.filter),
                        )
                    )).scalar_one()
                unread = counted[key]
            if dropped.rowcount:
                await promote(conn, consumer_id, None)
            expired = (dropped.rowcount or 0) + int(unread)
            total += expired
            await conn.execute(
                update(C).where(C.id == consumer_id).values(
                    expired_count=C.expired_count + expired,
                    read_through=max(consumer.read_through, last),
                )
            )
        return total
