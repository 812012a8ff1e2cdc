"""The event log: append (deduplicated, cursor order = commit order), read after a
cursor, prune past the retention. One interface, EventLog; a backend per database
(events/log_sqlite.py, events/log_postgres.py), picked by events/open_log.py; one
contract test for both (tests/events/test_log_contract.py).

Cursors must be committed in the order they are assigned, or a reader could pass a
cursor whose event is still uncommitted and never see it: each backend says how.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.database.models import EventLogState, EventRow
from notifier.events import dedupe, metrics
from notifier.events.cursor import format_cursor
from notifier.events.wire import with_cursor
from zoho.notifier.v1 import notifier_pb2

PruneHook = Callable[[AsyncConnection, int], Awaitable[None]]
# (cursor, user_id, app_type, subscription_id, stored event) as a backend reads them.
StoredRow = tuple[int, str, int, str, bytes]


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

    def columns(self) -> dict[str, str | int]:
        """The filter as column -> value to equal (the columns are notifier_events')."""
        where: dict[str, str | int] = {}
        if self.user_id:
            where["user_id"] = self.user_id
        if self.app_type:
            where["app_type"] = self.app_type
        if self.subscription_id:
            where["subscription_id"] = self.subscription_id
        return where


class LogWriter(Protocol):
    """The writer's own connection, kept for every commit (events/writer.py)."""

    async def insert(
        self, rows: list[dict[str, Any]], stale: list[str], received_at: datetime
    ) -> list[tuple[int, str]]:
        """Stores `rows` in one transaction, committed when it returns: a dedupe key
        already stored is skipped, and so is a late callback of a change a read-back
        already stored (events/dedupe.py); `stale` subscriptions get last_event_time.
        Returns (cursor, dedupe key) of each row stored."""
        ...

    async def close(self) -> None: ...


def stored_rows(
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


async def insert_new(
    conn: AsyncConnection, dialect_insert: Callable[..., Any], rows: list[dict[str, Any]]
) -> list[tuple[int, str]]:
    """Inserts `rows` in one statement with the dialect's INSERT (`sqlite.insert` or
    `postgresql.insert`); a dedupe key already stored is skipped. (cursor, key) of each."""
    result = await conn.execute(
        dialect_insert(EventRow).on_conflict_do_nothing()
        .returning(EventRow.cursor, EventRow.dedupe_key),
        rows,
    )
    return [(cursor, key) for cursor, key in result.all()]


class EventLog(ABC):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        # subscription id -> when its last_event_time was last written (monotonic): it is
        # written at most once a second, not in every commit.
        self._touched: dict[str, float] = {}

    @abstractmethod
    async def writer_connection(self) -> LogWriter:
        """A connection for the writer to keep and pass to every `append`."""

    @abstractmethod
    async def _read(
        self, after: int, through: int | None, where: dict[str, str | int], limit: int
    ) -> Sequence[StoredRow]:
        """Up to `limit` stored rows in (after, through], in cursor order, whose columns
        equal `where`'s values."""

    @abstractmethod
    async def _serialise(self, conn: AsyncConnection) -> None:
        """In the caller's transaction: no other append draws cursors until it commits."""

    @abstractmethod
    async def _insert_returning(
        self, conn: AsyncConnection, rows: list[dict[str, Any]]
    ) -> list[tuple[int, str]]:
        """Inserts `rows` (a dedupe key already stored is skipped); (cursor, key) of each."""

    @abstractmethod
    async def _announce(self, conn: AsyncConnection) -> None:
        """In the caller's transaction: other replicas' tails hear of it once committed."""

    async def append(
        self, events: Sequence[NewEvent], received_at: datetime, connection: LogWriter
    ) -> list[Logged]:
        """Stores `events` in one transaction (a dedupe key already stored is skipped);
        returns the new ones with their cursors, in cursor order. Committed when it
        returns. `connection`: the writer's own, from `writer_connection` (saves a pool
        checkout per commit)."""
        rows, blobs = stored_rows(events, received_at)
        now = time.monotonic()
        stale = sorted(
            # A keeper's "gap" notice is not an event from Zoho: last_event_time stays.
            {new.event.subscription_id for new in events if new.event.operation != "gap"}
            - {s for s, at in self._touched.items() if now - at < 1.0}
        )
        returned = await connection.insert(rows, stale, received_at)
        if returned:
            self._touched.update(dict.fromkeys(stale, now))
            if len(self._touched) > 10_000:
                self._touched.clear()
        returned.sort()
        by_key = _first_by_key(events)
        origins: dict[int, int] = {}
        for cursor, key in returned:
            event = by_key[key]
            event.cursor = format_cursor(cursor)
            origins[event.origin] = origins.get(event.origin, 0) + 1
        for origin, count in origins.items():
            metrics.APPENDED.labels(metrics.ORIGINS.get(origin, "notice")).inc(count)
        return _logged(returned, by_key, blobs)

    async def append_recovered(
        self, conn: AsyncConnection, events: Sequence[NewEvent], received_at: datetime
    ) -> list[Logged]:
        """Change capture's append, inside the caller's transaction (which also moves its
        watermark, so both commit or neither): cursors drawn under the same rule as
        `append`'s, and a change some stored event already tells is skipped
        (events/dedupe.py). The caller wakes the tail once committed."""
        if not events:
            return []
        rows, blobs = stored_rows(events, received_at)
        await self._serialise(conn)
        told = await dedupe.already_told(conn, rows, origin=None)
        rows = [row for row in rows if row["dedupe_key"] not in told]
        if not rows:
            return []
        returned = sorted(await self._insert_returning(conn, rows))
        if returned:
            await self._announce(conn)
        # Counted by the caller once its transaction commits (capture/store.py).
        return _logged(returned, _first_by_key(events), blobs)

    async def read_after(
        self,
        after: int,
        event_filter: EventFilter,
        limit: int,
        *,
        through: int | None = None,
    ) -> list[Logged]:
        rows = await self._read(after, through, event_filter.columns(), limit)
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


def _first_by_key(events: Sequence[NewEvent]) -> dict[str, notifier_pb2.NotificationEvent]:
    by_key: dict[str, notifier_pb2.NotificationEvent] = {}
    for new in events:
        by_key.setdefault(new.dedupe_key, new.event)
    return by_key


def _logged(
    returned: list[tuple[int, str]],
    by_key: dict[str, notifier_pb2.NotificationEvent],
    blobs: dict[str, bytes],
) -> list[Logged]:
    """The stored events as Logged, in the order of `returned` (cursor, dedupe key)."""
    return [
        Logged(
            cursor, by_key[key].user_id, by_key[key].app_type, by_key[key].subscription_id,
            with_cursor(cursor, blobs[key]),
        )
        for cursor, key in returned
    ]
