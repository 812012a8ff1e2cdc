"""The event log's storage: append (deduplicated, cursor order = commit order), read
after a cursor, prune past the retention.

Cursors must be committed in the order they are assigned, or a reader could pass a
cursor whose event is still uncommitted and never see it. SQLite has one writer at a
time; on PostgreSQL every append takes one transaction-scoped advisory lock, so
replicas' appends are serialised (events/writer.py batches them, so this is one lock
per batch, not per event) and NOTIFY tells every replica once the batch is committed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.database.models import EventLogState, EventRow, SubscriptionRow
from notifier.events import dedupe, pg_direct
from notifier.events.cursor import format_cursor
from notifier.events.pg_direct import PostgresAppend
from notifier.events.wire import with_cursor
from zoho.notifier.v1 import notifier_pb2

_APPEND_LOCK = 0x4E_45_56  # any constant, the same in every replica

PruneHook = Callable[[AsyncConnection, int], Awaitable[None]]


class Logged(NamedTuple):
    """A stored event as watchers get it: the fields filters look at, and the message
    already serialized (the stored bytes with the cursor appended), written as it is."""

    cursor: int
    user_id: str
    app_type: int
    subscription_id: str
    wire: bytes


@dataclass(frozen=True)
class NewEvent:
    dedupe_key: str
    event: notifier_pb2.NotificationEvent  # without cursor and received_time


@dataclass(frozen=True)
class EventFilter:
    user_id: str = ""
    app_type: int = 0
    subscription_id: str = ""

    def matches(self, event: notifier_pb2.NotificationEvent | Logged) -> bool:
        return (
            (not self.user_id or event.user_id == self.user_id)
            and (not self.app_type or event.app_type == self.app_type)
            and (not self.subscription_id or event.subscription_id == self.subscription_id)
        )


def _rows(
    events: Sequence[NewEvent], received_at: datetime
) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The rows to insert, and each dedupe key's serialized event (without cursor)."""
    stamp = Timestamp()
    stamp.FromDatetime(received_at)
    rows = []
    blobs: dict[str, bytes] = {}
    for new in events:
        event = new.event
        event.received_time.CopyFrom(stamp)
        event.ClearField("cursor")
        blob = event.SerializeToString()
        blobs.setdefault(new.dedupe_key, blob)
        kind = dedupe.kind_of(event.operation) if event.record_id else None
        rows.append(
            {
                "dedupe_key": new.dedupe_key,
                "subscription_id": event.subscription_id,
                "user_id": event.user_id,
                "app_type": event.app_type,
                "received_at": received_at,
                "event": blob,
                "record_id": event.record_id or None,
                "change_kind": kind,
                "change_time": dedupe.change_time(event) if kind else None,
                "origin": event.origin or None,
                # Whether a read-back may already have stored this change (dedupe.py).
                "late": event.origin == notifier_pb2.EVENT_ORIGIN_CALLBACK
                and kind is not None
                and (at := dedupe.change_time(event)) is not None
                and received_at - at >= dedupe.LATE_CALLBACK,
            }
        )
    return rows, blobs


class EventLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self.postgres else sqlite.insert
        # subscription id -> when its last_event_time was last written (monotonic): it is
        # written at most once a second, not in every commit.
        self._touched: dict[str, float] = {}

    async def writer_connection(self) -> AsyncConnection | PostgresAppend:
        """A connection for the writer to keep and pass to every `append`."""
        if self.postgres:
            url = self.engine.url.set(drivername="postgresql")
            return PostgresAppend(url.render_as_string(hide_password=False))
        return await self.engine.connect()

    async def append(
        self,
        events: Sequence[NewEvent],
        received_at: datetime,
        connection: AsyncConnection | PostgresAppend,
    ) -> list[Logged]:
        """Stores `events` in one transaction (a dedupe key already stored is skipped);
        returns the new ones with their cursors, in cursor order. Committed when it
        returns. `connection`: the writer's own, from `writer_connection` (saves a pool
        checkout per commit; on PostgreSQL a PostgresAppend, one round trip per commit)."""
        rows, blobs = _rows(events, received_at)
        now = time.monotonic()
        stale = sorted(
            # A keeper's "gap" notice is not an event from Zoho: last_event_time stays.
            {new.event.subscription_id for new in events if new.event.operation != "gap"}
            - {s for s, at in self._touched.items() if now - at < 1.0}
        )
        if isinstance(connection, PostgresAppend):
            returned = await connection.insert(rows, stale, received_at, _APPEND_LOCK)
        else:
            returned = await self._sqlite_append(connection, rows, stale, received_at)
        if returned:
            self._touched.update(dict.fromkeys(stale, now))
            if len(self._touched) > 10_000:
                self._touched.clear()
        by_key: dict[str, notifier_pb2.NotificationEvent] = {}
        for new in events:
            by_key.setdefault(new.dedupe_key, new.event)
        stored = []
        for cursor, key in sorted(returned):
            event = by_key[key]
            event.cursor = format_cursor(cursor)
            stored.append(
                Logged(
                    cursor,
                    event.user_id,
                    event.app_type,
                    event.subscription_id,
                    with_cursor(cursor, blobs[key]),
                )
            )
        return stored

    async def _sqlite_append(
        self,
        conn: AsyncConnection,
        rows: list[dict[str, Any]],
        stale: list[str],
        received_at: datetime,
    ) -> list[tuple[int, str]]:
        # SQLite has one writer at a time, so no lock orders the cursors; PostgreSQL's
        # append is PostgresAppend's one statement (lock, insert, touch, NOTIFY).
        assert not self.postgres, "on PostgreSQL, append through writer_connection()"
        async with conn.begin():
            # A late callback of a change a read-back already stored is dropped.
            callbacks = [row for row in rows if row["late"]]
            told = await dedupe.already_told(
                conn, callbacks, origin=notifier_pb2.EVENT_ORIGIN_RECOVERED
            )
            rows = [row for row in rows if row["dedupe_key"] not in told]
            if not rows:
                return []
            # One statement for the batch; a dedupe key already stored is skipped.
            result = await conn.execute(
                self._insert(EventRow)
                .on_conflict_do_nothing()
                .returning(EventRow.cursor, EventRow.dedupe_key),
                rows,
            )
            returned = [(cursor, key) for cursor, key in result.all()]
            if returned and stale:
                await conn.execute(
                    update(SubscriptionRow)
                    .where(SubscriptionRow.id.in_(stale))
                    .values(last_event_time=received_at)
                )
        return returned

    async def append_recovered(
        self, conn: AsyncConnection, events: Sequence[NewEvent], received_at: datetime
    ) -> list[Logged]:
        """Change capture's append, inside the caller's transaction (which also moves its
        watermark, so both commit or neither): cursors drawn under the same lock as
        `append`'s, and a change some stored event already tells is skipped
        (events/dedupe.py). The caller wakes the tail once committed."""
        if not events:
            return []
        rows, blobs = _rows(events, received_at)
        if self.postgres:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _APPEND_LOCK})
        told = await dedupe.already_told(conn, rows, origin=None)
        rows = [row for row in rows if row["dedupe_key"] not in told]
        if not rows:
            return []
        result = await conn.execute(
            self._insert(EventRow)
            .on_conflict_do_nothing()
            .returning(EventRow.cursor, EventRow.dedupe_key),
            rows,
        )
        returned = sorted((cursor, key) for cursor, key in result.all())
        if self.postgres and returned:
            await conn.execute(
                text("SELECT pg_notify(:channel, '')"), {"channel": pg_direct.NOTIFY_CHANNEL}
            )
        by_key = {new.dedupe_key: new.event for new in events}
        return [
            Logged(
                cursor, by_key[key].user_id, by_key[key].app_type, by_key[key].subscription_id,
                with_cursor(cursor, blobs[key]),
            )
            for cursor, key in returned
        ]

    async def read_after(
        self,
        after: int,
        event_filter: EventFilter,
        limit: int,
        *,
        through: int | None = None,
    ) -> list[Logged]:
        where: dict[str, str | int] = {}
        if event_filter.user_id:
            where["user_id"] = event_filter.user_id
        if event_filter.app_type:
            where["app_type"] = event_filter.app_type
        if event_filter.subscription_id:
            where["subscription_id"] = event_filter.subscription_id
        rows: Sequence[Any]
        async with self.engine.connect() as conn:
            if self.postgres:
                raw = (await conn.get_raw_connection()).driver_connection
                rows = await pg_direct.read_after(raw, after, through, where, limit)
            else:
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
                rows = (await conn.execute(query)).all()
        return [Logged(c, u, a, s, with_cursor(c, blob)) for c, u, a, s, blob in rows]

    async def bounds(self) -> tuple[int, int]:
        """(pruned_through, newest): every cursor at or below the first is gone; the
        second is the newest stored (or pruned_through when none is)."""
        async with self.engine.connect() as conn:
            pruned = (await conn.execute(select(EventLogState.pruned_through))).scalar_one()
            newest = (await conn.execute(select(func.max(EventRow.cursor)))).scalar()
        return pruned, max(pruned, newest or 0)

    async def prune(self, before: datetime, *, before_delete: PruneHook | None = None) -> int:
        """Deletes every event received before `before`; returns how many.
        `before_delete(conn, last)`: runs in the same transaction first (consumers count
        what they had not acknowledged up to `last`, notifier/consumers/)."""
        async with self.engine.begin() as conn:
            last = (
                await conn.execute(
                    select(func.max(EventRow.cursor)).where(EventRow.received_at < before)
                )
            ).scalar()
            if last is None:
                return 0
            if before_delete is not None:
                await before_delete(conn, last)
            # By cursor, not by time, so that "at or below pruned_through" is exact.
            result = await conn.execute(delete(EventRow).where(EventRow.cursor <= last))
            await conn.execute(
                update(EventLogState)
                .where(EventLogState.id == 1, EventLogState.pruned_through < last)
                .values(pruned_through=last)
            )
        return result.rowcount or 0
