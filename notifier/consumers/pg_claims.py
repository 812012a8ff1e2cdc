"""A consumer's hot statements on PostgreSQL, on psycopg directly (as events/log_postgres.py
does for the log): arrays instead of one bind per row and value, and a claim sent as two
pipelines, so that it waits on the server twice rather than once per statement.
SQLAlchemy's per-row handling cost several times the statements themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from notifier.events.log import EventFilter

# The rows acks (or nacks) name by cursor, each with the generation it was delivered in
# (NULL: any), found one primary-key lookup each: LIMIT keeps the lookup a nested loop,
# as without it a planner that has no statistics for the table (autovacuum has not
# analyzed it yet) joins by scanning every index entry of the consumer, the dead ones
# of every event it ever acked included.
_NAMED = """
ARRAY(SELECT x.ctid
      FROM unnest(%(cursors)s::int8[], %(generations)s::int4[]) AS a(cursor, generation)
      CROSS JOIN LATERAL (
          SELECT d.ctid FROM notifier_consumer_deliveries AS d
          WHERE d.consumer_id = %(c)s::varchar AND d.cursor = a.cursor AND d.attempts > 0
            AND (a.generation IS NULL OR d.generation = a.generation)
          LIMIT 1) AS x)
"""

_ACK = """
DELETE FROM notifier_consumer_deliveries AS d
WHERE d.ctid = ANY({named})
RETURNING d.record_key
""".replace("{named}", _NAMED)

# The acked records' next rows become their heads; acked_until moves to just before the
# lowest row left (or to the read position when none is), a scan that starts at the old
# acked_until (below it are only rows acks deleted: dead index entries until vacuum).
_AFTER_ACKS = """
WITH heads AS (
    UPDATE notifier_consumer_deliveries SET is_head = true
    WHERE consumer_id = %(c)s::varchar AND cursor IN (
        SELECT min(x.cursor) FROM notifier_consumer_deliveries AS x
        WHERE x.consumer_id = %(c)s::varchar AND x.record_key = ANY(%(keys)s::text[])
          AND x.cursor > (SELECT COALESCE(acked_until, 0) FROM notifier_consumers
                          WHERE id = %(c)s::varchar)
        GROUP BY x.record_key)
)
UPDATE notifier_consumers SET acked_until = COALESCE(
    (SELECT min(cursor) - 1 FROM notifier_consumer_deliveries
     WHERE consumer_id = %(c)s::varchar
       AND cursor > COALESCE(notifier_consumers.acked_until, 0)),
    read_through)
WHERE id = %(c)s::varchar
"""


async def ack(conn: Any, consumer_id: str, acks: list[tuple[int, int | None]]) -> list[str]:
    """Deletes the acked deliveries, moves heads and acked_until; the acked records."""
    cursor = await conn.execute(_ACK, {
        "c": consumer_id,
        "cursors": [c for c, _ in acks],
        "generations": [g for _, g in acks],
    }, prepare=True)
    keys = [key for (key,) in await cursor.fetchall()]
    if keys:
        await conn.execute(_AFTER_ACKS, {"c": consumer_id, "keys": sorted(set(keys))},
                           prepare=True)
    return keys


# ---- A whole claim in two round trips (claims.py, Claims._claim_postgres) ----
#
# First: lock the consumer, apply acks and nacks, and read the events past its read
# position; then, once Python has keyed the new events by record, lease and insert and
# commit. Each is sent as one psycopg pipeline: the statements run in order (each sees
# the one before) and the client waits for the server once, not once per statement.
# Scans of the consumer's rows start at its acked_until: the rows below it were deleted
# by acks and are dead index entries until vacuum gets to them.

_LOCK = """
UPDATE notifier_consumers SET generation = generation WHERE id = %(c)s::varchar
RETURNING id, user_id, app_type, subscription_id, ack_deadline_seconds, read_through,
          acked_until, generation, expired_count, created_at
"""

# Acks delete their rows; each acked record's next row becomes its head, and acked_until
# moves to just before the lowest row left (or to the read position when none is). The
# statement's snapshot still shows the deleted rows, hence the NOT IN, and the consumer's
# acked_until as it was (every row is above it).
_SETTLE_ACKS = """
WITH acked AS (
    DELETE FROM notifier_consumer_deliveries AS d
    WHERE d.ctid = ANY({named})
    RETURNING d.cursor, d.record_key
), nexts AS (
    SELECT min(x.cursor) AS cursor FROM notifier_consumer_deliveries AS x
    WHERE x.consumer_id = %(c)s::varchar AND x.cursor > (
        SELECT COALESCE(acked_until, 0) FROM notifier_consumers WHERE id = %(c)s::varchar)
      AND x.record_key IN (SELECT record_key FROM acked)
      AND x.cursor NOT IN (SELECT cursor FROM acked)
    GROUP BY x.record_key
), heads AS (
    UPDATE notifier_consumer_deliveries AS d SET is_head = true FROM nexts
    WHERE d.consumer_id = %(c)s::varchar AND d.cursor = nexts.cursor
), moved AS (
    UPDATE notifier_consumers SET acked_until = COALESCE(
        (SELECT min(x.cursor) - 1 FROM notifier_consumer_deliveries AS x
         WHERE x.consumer_id = %(c)s::varchar AND x.cursor NOT IN (SELECT cursor FROM acked)
           AND x.cursor > (SELECT COALESCE(acked_until, 0) FROM notifier_consumers
                           WHERE id = %(c)s::varchar)),
        read_through)
    WHERE id = %(c)s::varchar AND EXISTS (SELECT FROM acked)
)
SELECT count(*) FROM acked
""".replace("{named}", _NAMED)

_NACK = """
UPDATE notifier_consumer_deliveries AS d SET holder = NULL, deadline = NULL
WHERE d.ctid = ANY({named})
""".replace("{named}", _NAMED)

# Whether to read (the consumer holds fewer than `max_rows` rows, and fewer than `want`
# of them are ready to lease: reading further ahead only makes rows every claim's scans
# then walk) and, if so, the events past its (locked) read position: at least one row,
# `reading` first in each; the filter conditions are added per consumer (_read_query).
_READ = """
WITH c AS MATERIALIZED (
    SELECT read_through, COALESCE(acked_until, 0) AS acked FROM notifier_consumers
    WHERE id = %(c)s::varchar
), held AS MATERIALIZED (
    SELECT count(*) AS n FROM notifier_consumer_deliveries AS d, c
    WHERE d.consumer_id = %(c)s::varchar AND d.cursor > c.acked
), ready AS MATERIALIZED (
    SELECT count(*) AS n FROM (
        SELECT FROM notifier_consumer_deliveries AS d, c
        WHERE d.consumer_id = %(c)s::varchar AND d.cursor > c.acked AND d.is_head
          AND (d.deadline IS NULL OR d.deadline <= %(now)s::timestamptz)
        LIMIT %(want)s::int8) AS r
)
SELECT held.n < %(max_rows)s::int8 AND ready.n < %(want)s::int8 AS reading,
       ev.cursor, ev.user_id, ev.app_type, ev.subscription_id, ev.event
FROM c CROSS JOIN held CROSS JOIN ready
LEFT JOIN LATERAL (
    SELECT ev.cursor, ev.user_id, ev.app_type, ev.subscription_id, ev.event
    FROM notifier_events AS ev
    WHERE held.n < %(max_rows)s::int8 AND ready.n < %(want)s::int8
      AND ev.cursor > c.read_through AND ev.cursor <= %(through)s::int8 {filters}
    ORDER BY ev.cursor LIMIT %(limit)s::int8
) AS ev ON true
ORDER BY ev.cursor
"""

# Ready heads leased oldest first, then the new rows inserted: a new row is its record's
# head when the record has no row yet and it is the record's first in the batch, and
# the first heads among them take the room the ready ones left, leased as they are
# inserted (one write per event, not an insert and an update).
_LEASE_AND_INSERT = """
WITH ready AS MATERIALIZED (
    SELECT cursor FROM notifier_consumer_deliveries
    WHERE consumer_id = %(c)s::varchar AND cursor > %(from)s::int8 AND is_head
      AND (deadline IS NULL OR deadline <= %(now)s::timestamptz)
    ORDER BY cursor LIMIT %(want)s::int8
), leased AS (
    UPDATE notifier_consumer_deliveries AS d
    SET holder = %(holder)s::varchar, deadline = %(deadline)s::timestamptz,
        attempts = d.attempts + 1
    FROM ready WHERE d.consumer_id = %(c)s::varchar AND d.cursor = ready.cursor
    RETURNING d.cursor, d.attempts
), new AS (
    SELECT t.cursor, t.key, t.at,
           row_number() OVER (PARTITION BY t.key ORDER BY t.cursor) = 1
           AND NOT EXISTS (SELECT FROM notifier_consumer_deliveries AS x
                           WHERE x.consumer_id = %(c)s::varchar AND x.record_key = t.key
                             AND x.cursor > %(from)s::int8)
           AS head
    FROM unnest(%(cursors)s::int8[], %(keys)s::text[], %(ats)s::timestamptz[])
         AS t(cursor, key, at)
), ranked AS (
    SELECT new.*, new.head AND row_number() OVER (PARTITION BY new.head ORDER BY new.cursor)
           <= %(want)s::int8 - (SELECT count(*) FROM ready) AS lease
    FROM new
), inserted AS (
    INSERT INTO notifier_consumer_deliveries
        (consumer_id, cursor, generation, record_key, is_head, received_at, attempts,
         holder, deadline)
    SELECT %(c)s::varchar, r.cursor, %(generation)s::int4, r.key, r.head, r.at,
           CASE WHEN r.lease THEN 1 ELSE 0 END,
           CASE WHEN r.lease THEN %(holder)s::varchar END,
           CASE WHEN r.lease THEN %(deadline)s::timestamptz END
    FROM ranked AS r
    RETURNING cursor, attempts
)
SELECT leased.cursor, leased.attempts, e.event
FROM leased LEFT JOIN notifier_events AS e ON e.cursor = leased.cursor
UNION ALL
SELECT cursor, attempts, NULL FROM inserted WHERE attempts > 0
"""

# GREATEST: another replica's tail may be ahead of ours (it read further meanwhile).
_ADVANCE = """
UPDATE notifier_consumers SET read_through = GREATEST(read_through, %(position)s::int8)
WHERE id = %(c)s::varchar
"""

# The earliest running lease, when this claim leased nothing (a Pull sleeps until then).
_NEXT_DEADLINE = """
SELECT min(deadline) FROM notifier_consumer_deliveries
WHERE consumer_id = %(c)s::varchar AND cursor > %(from)s::int8 AND deadline IS NOT NULL
"""


def _read_query(event_filter: EventFilter) -> tuple[str, dict[str, Any]]:
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if event_filter.user_id:
        conditions.append("AND ev.user_id = %(user_id)s::varchar")
        params["user_id"] = event_filter.user_id
    if event_filter.app_type:
        conditions.append("AND ev.app_type = %(app_type)s::int4")
        params["app_type"] = event_filter.app_type
    if event_filter.subscription_id:
        conditions.append("AND ev.subscription_id = %(subscription_id)s::varchar")
        params["subscription_id"] = event_filter.subscription_id
    return _READ.replace("{filters}", " ".join(conditions)), params


def _marked(acks: list[tuple[int, int | None]]) -> dict[str, Any]:
    return {"cursors": [c for c, _ in acks], "generations": [g for _, g in acks]}


@dataclass
class Opened:
    """What the first round trip found: the locked consumer (None: there is none), how
    many open deliveries the acks closed, and the events read past its position (None:
    not read: none asked, `max_rows` rows held already, or `want` ready without)."""

    row: tuple[Any, ...] | None
    acked: int
    read: list[tuple[int, str, int, str, bytes]] | None


async def open_claim(
    conn: Any, consumer_id: str, acks: list[tuple[int, int | None]],
    nacks: list[tuple[int, int | None]], *, read: tuple[EventFilter, int, int, int] | None,
    want: int, now: datetime,
) -> Opened:
    """The first round trip (BEGIN included), leaving the transaction open. `read`: (the
    filter the consumer is believed to have, through, limit, max_rows)."""
    c = {"c": consumer_id}
    settled = events = None
    # Leaving the block sends everything queued and collects every result: one wait.
    async with conn.pipeline():
        locked = await conn.execute(_LOCK, c, prepare=True)
        if acks:
            settled = await conn.execute(_SETTLE_ACKS, {**c, **_marked(acks)}, prepare=True)
        if nacks:
            await conn.execute(_NACK, {**c, **_marked(nacks)}, prepare=True)
        if read is not None:
            event_filter, through, limit, max_rows = read
            query, params = _read_query(event_filter)
            events = await conn.execute(query, {
                **c, **params, "through": through, "limit": limit, "max_rows": max_rows,
                "want": want, "now": now,
            }, prepare=True, binary=True)
    row = await locked.fetchone()
    acked = (await settled.fetchone())[0] if settled is not None else 0
    found = None
    if events is not None:
        rows = await events.fetchall()
        if rows and rows[0][0]:
            found = [(c, u, a, s, bytes(e)) for _, c, u, a, s, e in rows if c is not None]
    return Opened(row, int(acked), found)


async def finish_claim(
    conn: Any, consumer_id: str, *, holder: str, want: int, now: datetime,
    deadline: datetime, acked_from: int, generation: int,
    new: list[tuple[int, str, datetime]], position: int | None,
) -> list[tuple[int, int, bytes | None]]:
    """The second round trip, COMMIT included: leases up to `want` ready heads, inserts
    `new` rows (cursor, record key, received_at), leasing the first heads among them in
    the room left, and moves the read position to `position` (None: unmoved). Returns
    the leased (cursor, attempts, the stored event; None when it is one of `new`, or
    was pruned meanwhile)."""
    c = {"c": consumer_id}
    leasing = None
    async with conn.pipeline():
        if want > 0:
            leasing = await conn.execute(_LEASE_AND_INSERT, {
                **c, "from": acked_from, "now": now, "want": want, "holder": holder,
                "deadline": deadline, "generation": generation,
                "cursors": [n[0] for n in new], "keys": [n[1] for n in new],
                "ats": [n[2] for n in new],
            }, prepare=True)
        if position is not None:
            await conn.execute(_ADVANCE, {**c, "position": position}, prepare=True)
        # As a statement, so that it goes with the others (commit() would wait on its own).
        await conn.execute("COMMIT")
    if leasing is None:
        return []
    return [(cursor, attempts, bytes(event) if event is not None else None)
            for cursor, attempts, event in await leasing.fetchall()]


async def next_deadline(conn: Any, consumer_id: str, acked_from: int) -> datetime | None:
    """The consumer's earliest running lease (asked only when a claim leased nothing, as
    its Pull is about to sleep until then anyway)."""
    cursor = await conn.execute(_NEXT_DEADLINE, {"c": consumer_id, "from": acked_from},
                                prepare=True)
    row = await cursor.fetchone()
    return row[0] if row else None
