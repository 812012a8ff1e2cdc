"""A claim's hot statements on PostgreSQL, on psycopg directly inside the claim's own
transaction (as events/log_postgres.py does for the log): arrays instead of one bind per
row and value, and leasing with its events' bytes in one round trip. SQLAlchemy's
per-row handling cost several times the statements themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

# The ready heads, oldest first, leased and returned with their stored events (NULL for
# one retention pruned meanwhile: the pruner counts and deletes it).
_LEASE = """
WITH ready AS (
    SELECT cursor FROM notifier_consumer_deliveries
    WHERE consumer_id = %(c)s::varchar AND is_head
      AND (deadline IS NULL OR deadline <= %(now)s::timestamptz)
    ORDER BY cursor LIMIT %(want)s::int8
), leased AS (
    UPDATE notifier_consumer_deliveries AS d
    SET holder = %(holder)s::varchar, deadline = %(deadline)s::timestamptz,
        attempts = d.attempts + 1
    FROM ready WHERE d.consumer_id = %(c)s::varchar AND d.cursor = ready.cursor
    RETURNING d.cursor, d.attempts
)
SELECT leased.cursor, leased.attempts, e.event
FROM leased LEFT JOIN notifier_events AS e ON e.cursor = leased.cursor
ORDER BY leased.cursor
"""

# New deliveries, heads and the ones leased at once decided by the claim.
_INSERT = """
INSERT INTO notifier_consumer_deliveries
    (consumer_id, cursor, generation, record_key, is_head, received_at, attempts, holder,
     deadline)
SELECT %(c)s::varchar, t.cursor, %(generation)s::int4, t.key, t.head, t.at, t.attempts,
       t.holder, t.deadline
FROM unnest(%(cursors)s::int8[], %(keys)s::text[], %(heads)s::bool[], %(ats)s::timestamptz[],
            %(attempts)s::int4[], %(holders)s::text[], %(deadlines)s::timestamptz[])
     AS t(cursor, key, head, at, attempts, holder, deadline)
"""

# Acks by cursor, each with the generation it was delivered in (NULL: any).
_ACK = """
DELETE FROM notifier_consumer_deliveries AS d
USING unnest(%(cursors)s::int8[], %(generations)s::int4[]) AS a(cursor, generation)
WHERE d.consumer_id = %(c)s::varchar AND d.attempts > 0 AND d.cursor = a.cursor
  AND (a.generation IS NULL OR d.generation = a.generation)
RETURNING d.record_key
"""

# The acked records' next rows become their heads; acked_until moves to just before the
# lowest row left (or to the read position when none is).
_AFTER_ACKS = """
WITH heads AS (
    UPDATE notifier_consumer_deliveries SET is_head = true
    WHERE consumer_id = %(c)s::varchar AND cursor IN (
        SELECT min(cursor) FROM notifier_consumer_deliveries
        WHERE consumer_id = %(c)s::varchar AND record_key = ANY(%(keys)s::text[])
        GROUP BY record_key)
)
UPDATE notifier_consumers SET acked_until = COALESCE(
    (SELECT min(cursor) - 1 FROM notifier_consumer_deliveries WHERE consumer_id = %(c)s::varchar),
    read_through)
WHERE id = %(c)s::varchar
"""


async def lease(conn: Any, consumer_id: str, holder: str, want: int, now: datetime,
                deadline: datetime) -> list[tuple[int, int, bytes | None]]:
    """`conn`: the claim transaction's psycopg connection."""
    cursor = await conn.execute(_LEASE, {
        "c": consumer_id, "now": now, "want": want, "holder": holder, "deadline": deadline,
    }, prepare=True)
    return [(c, attempts, bytes(event) if event is not None else None)
            for c, attempts, event in await cursor.fetchall()]


async def insert(conn: Any, consumer_id: str, generation: int, rows: list[dict[str, Any]]
                 ) -> None:
    await conn.execute(_INSERT, {
        "c": consumer_id, "generation": generation,
        "cursors": [row["cursor"] for row in rows],
        "keys": [row["record_key"] for row in rows],
        "heads": [row["is_head"] for row in rows],
        "ats": [row["received_at"] for row in rows],
        "attempts": [row["attempts"] for row in rows],
        "holders": [row["holder"] for row in rows],
        "deadlines": [row["deadline"] for row in rows],
    }, prepare=True)


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
