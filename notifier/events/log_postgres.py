"""The event log on PostgreSQL. Every append takes one transaction-scoped advisory lock
before it draws a cursor, so replicas' appends are serialised and cursor order is
commit order (events/writer.py batches them, so this is one lock per batch, not per
event); NOTIFY tells every replica once the batch is committed (events/pg_listen.py).

The two hot paths run on psycopg directly (SQLAlchemy's row handling cost several times
the query itself per event read). The writer's append is one round trip: advisory
lock, insert, last_event_time and NOTIFY as one autocommit statement (its own
transaction), where BEGIN, lock, INSERT, UPDATE, NOTIFY and COMMIT each waited for the
server."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.events import dedupe
from notifier.events.log import EventLog, LogWriter, StoredRow, insert_new

NOTIFY_CHANNEL = "notifier_events"
_APPEND_LOCK = 0x4E_45_56  # any constant, the same in every replica

# Every inserted row joins `held`, so the lock is taken before the first cursor is drawn
# and held until the statement's transaction commits: cursor order = commit order.
_APPEND = """
WITH held AS MATERIALIZED (SELECT pg_advisory_xact_lock(%(lock)s)),
inserted AS (
    INSERT INTO notifier_events
        (dedupe_key, subscription_id, user_id, app_type, received_at, event,
         record_id, change_kind, change_time, origin)
    SELECT t.k, t.s, t.u, t.a, %(at)s, t.e, t.rid, t.kind, t.ct, t.o
    FROM held, unnest(%(keys)s::text[], %(subs)s::text[], %(users)s::text[],
                      %(apps)s::int4[], %(events)s::bytea[], %(records)s::text[],
                      %(kinds)s::text[], %(times)s::timestamptz[], %(origins)s::int4[],
                      %(late)s::bool[])
               AS t(k, s, u, a, e, rid, kind, ct, o, late)
    -- A late callback of a change a read-back already stored is dropped (dedupe.py).
    WHERE NOT t.late OR NOT EXISTS (
        SELECT FROM notifier_events r WHERE r.origin = 2 AND {match})
    ON CONFLICT DO NOTHING
    RETURNING cursor, dedupe_key
),
touched AS (
    UPDATE notifier_subscriptions SET last_event_time = %(at)s
    WHERE id = ANY(%(stale)s::text[]) AND EXISTS (SELECT FROM inserted)
),
notified AS MATERIALIZED (
    SELECT pg_notify(%(channel)s, '') FROM (SELECT FROM inserted LIMIT 1) AS one
)
SELECT inserted.cursor, inserted.dedupe_key FROM inserted, notified
""".replace("{match}", dedupe.PG_MATCH)  # events/dedupe.py's rule, a constant


class PostgresAppend:
    """The writer's own connection (autocommit), opened on first use."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def insert(
        self, rows: list[dict[str, Any]], stale: list[str], received_at: datetime
    ) -> list[tuple[int, str]]:
        if self._conn is None:
            # connect_timeout: a database host that vanished fails the commit, not hangs it.
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=5
            )
        params = {
            "lock": _APPEND_LOCK,
            "at": received_at,
            "keys": [row["dedupe_key"] for row in rows],
            "subs": [row["subscription_id"] for row in rows],
            "users": [row["user_id"] for row in rows],
            "apps": [row["app_type"] for row in rows],
            "events": [row["event"] for row in rows],
            "records": [row["record_id"] for row in rows],
            "kinds": [row["change_kind"] for row in rows],
            "times": [row["change_time"] for row in rows],
            "origins": [row["origin"] for row in rows],
            "late": [row["late"] for row in rows],
            "match": dedupe.MATCH_SECONDS,
            "stale": stale,
            "channel": NOTIFY_CHANNEL,
        }
        cursor = await self._conn.execute(_APPEND, params, prepare=True)
        return [(number, key) for number, key in await cursor.fetchall()]

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()


class PostgresEventLog(EventLog):
    async def writer_connection(self) -> LogWriter:
        url = self.engine.url.set(drivername="postgresql")
        return PostgresAppend(url.render_as_string(hide_password=False))

    async def _read(
        self, after: int, through: int | None, where: dict[str, str | int], limit: int
    ) -> Sequence[StoredRow]:
        """On the pool's psycopg connection, rows as psycopg reads them (binary)."""
        conditions = ["cursor > %(after)s"]
        params: dict[str, Any] = {"after": after, "limit": limit}
        if through is not None:
            conditions.append("cursor <= %(through)s")
            params["through"] = through
        for column, value in where.items():
            conditions.append(f"{column} = %({column})s")
            params[column] = value
        query = (
            "SELECT cursor, user_id, app_type, subscription_id, event FROM notifier_events"  # noqa: S608  # the columns are EventFilter's own
            f" WHERE {' AND '.join(conditions)} ORDER BY cursor LIMIT %(limit)s"
        )
        async with self.engine.connect() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection
            cursor = await raw.execute(query, params, binary=True)
            rows: list[StoredRow] = await cursor.fetchall()
        return rows

    async def _serialise(self, conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": _APPEND_LOCK})

    async def _insert_returning(
        self, conn: AsyncConnection, rows: list[dict[str, Any]]
    ) -> list[tuple[int, str]]:
        return await insert_new(conn, insert, rows)

    async def _announce(self, conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
