"""The event log on SQLite: one writer at a time (the database's write lock), so the
order cursors are drawn in is the order they commit in, with no lock of ours; one
process per database file, so no other replica to tell."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.database.models import EventRow, SubscriptionRow
from notifier.events import dedupe
from notifier.events.log import EventLog, LogWriter, StoredRow, insert_new
from zoho.notifier.v1 import notifier_pb2


class SqliteAppend:
    """The writer's own connection: a SQLAlchemy connection kept open."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def insert(
        self, rows: list[dict[str, Any]], stale: list[str], received_at: datetime
    ) -> list[tuple[int, str]]:
        conn = self._conn
        async with conn.begin():
            # A late callback of a change a read-back already stored is dropped.
            callbacks = [row for row in rows if row["late"]]
            told = await dedupe.already_told(
                conn, callbacks, origin=notifier_pb2.EVENT_ORIGIN_RECOVERED
            )
            rows = [row for row in rows if row["dedupe_key"] not in told]
            if not rows:
                return []
            returned = await insert_new(conn, insert, rows)
            if returned and stale:
                await conn.execute(
                    update(SubscriptionRow)
                    .where(SubscriptionRow.id.in_(stale))
                    .values(last_event_time=received_at)
                )
        return returned

    async def close(self) -> None:
        await self._conn.close()


class SqliteEventLog(EventLog):
    async def writer_connection(self) -> LogWriter:
        return SqliteAppend(await self.engine.connect())

    async def _read(
        self, after: int, through: int | None, where: dict[str, str | int], limit: int
    ) -> Sequence[StoredRow]:
        query = select(
            EventRow.cursor,
            EventRow.user_id,
            EventRow.app_type,
            EventRow.subscription_id,
            EventRow.event,
        ).where(EventRow.cursor > after)
        if through is not None:
            query = query.where(EventRow.cursor <= through)
        for column, value in where.items():
            query = query.where(getattr(EventRow, column) == value)
        query = query.order_by(EventRow.cursor).limit(limit)
        async with self.engine.connect() as conn:
            rows: Sequence[Any] = (await conn.execute(query)).all()  # rows are tuples
        return rows

    async def _serialise(self, conn: AsyncConnection) -> None:
        pass  # the transaction's write lock serialises every writer

    async def _insert_returning(
        self, conn: AsyncConnection, rows: list[dict[str, Any]]
    ) -> list[tuple[int, str]]:
        return await insert_new(conn, insert, rows)

    async def _announce(self, conn: AsyncConnection) -> None:
        pass  # no other replica shares a SQLite file
