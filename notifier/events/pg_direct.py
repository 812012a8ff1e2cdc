"""The event log's two hot paths on PostgreSQL, on psycopg directly (SQLAlchemy's row
handling cost several times the query itself per event read).

The append is one round trip: advisory lock, insert, last_event_time and NOTIFY as one
autocommit statement (its own transaction), where BEGIN, lock, INSERT, UPDATE, NOTIFY
and COMMIT each waited for the server."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import psycopg

from notifier.events import dedupe

NOTIFY_CHANNEL = "notifier_events"

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
        self, rows: list[dict[str, Any]], stale: list[str], received_at: datetime, lock: int
    ) -> list[tuple[int, str]]:
        if self._conn is None:
            # connect_timeout: a database host that vanished fails the commit, not hangs it.
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=5
            )
        params = {
            "lock": lock,
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


async def read_after(
    conn: Any,  # a psycopg AsyncConnection: SQLAlchemy's driver_connection, typed Any
    after: int,
    through: int | None,
    where: dict[str, str | int],
    limit: int,
) -> list[tuple[int, str, int, str, bytes]]:
    """(cursor, user_id, app_type, subscription_id, event) after `after`, in cursor
    order; `where`: column -> value to equal (column names from EventLog, not callers)."""
    conditions = ["cursor > %(after)s"]
    params: dict[str, Any] = {"after": after, "limit": limit}
    if through is not None:
        conditions.append("cursor <= %(through)s")
        params["through"] = through
    for column, value in where.items():
        conditions.append(f"{column} = %({column})s")
        params[column] = value
    query = (
        "SELECT cursor, user_id, app_type, subscription_id, event FROM notifier_events"  # noqa: S608  # the columns are EventLog's own
        f" WHERE {' AND '.join(conditions)} ORDER BY cursor LIMIT %(limit)s"
    )
    cursor = await conn.execute(query, params, binary=True)
    return await cursor.fetchall()
