"""The hot paths of a Pull, each one transaction under the consumer's row lock (so two
replicas never lease one event to two Pulls): apply the acks and nacks gathered since
the last one, read new events from the log into deliveries, and lease the next ones.

Per-record order: of a record's rows only the lowest cursor (its head, `is_head`, kept
up to date here so that finding what is ready never joins the table with itself) may be
leased, and only while its deadline is unset or past; an ack deletes the head and makes
the record's next row its head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.consumers import pg_claims
from notifier.consumers.store import C, ConsumerState, D, E, lock, not_found, promote, state
from notifier.events.log import EventFilter, EventLog, Logged
from notifier.events.wire import with_cursor
from servicekit.errors import NotFound
from zoho.notifier.v1 import notifier_pb2

# Events read from the log into deliveries at a time, and how many rows (leased or
# waiting) one consumer may hold before it stops reading ahead.
READ_BATCH = 1000
MAX_ROWS = 10_000


def record_key(event: notifier_pb2.NotificationEvent) -> str:
    """One key per record (user, app, module, record_id); an event without a record
    (a gap) is ordered with its subscription's other record-less events."""
    parts: tuple[str, ...]
    if event.record_id:
        parts = (event.user_id, str(event.app_type), event.module, event.record_id)
    else:
        parts = ("subscription", event.subscription_id)
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


@dataclass
class Settled:
    """Acks and nacks gathered for one consumer, applied in one go. Each is a cursor
    with the generation it was delivered in (None: not delivered on this replica's
    stream, so applied to whichever delivery of that cursor is open)."""

    acks: list[tuple[int, int | None]] = field(default_factory=list)
    nacks: list[tuple[int, int | None]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.acks or self.nacks)


@dataclass(frozen=True)
class Leased:
    cursor: int
    wire: bytes  # the serialized NotificationEvent, cursor included
    attempts: int


@dataclass(frozen=True)
class Claim:
    consumer: ConsumerState
    leased: list[Leased]
    next_deadline: datetime | None  # the earliest lease of this consumer still running
    acked: int = 0
    unknown_acks: int = 0
    # More is waiting to be read from the log: claim again at once, without waiting for
    # a wake-up (a read can find only events behind outstanding ones of their records).
    more: bool = False


def _cursor_match(cursors: Sequence[tuple[int, int | None]]) -> list[object]:
    by_generation: dict[int | None, list[int]] = {}
    for cursor, generation in cursors:
        by_generation.setdefault(generation, []).append(cursor)
    conditions: list[object] = []
    for generation, group in by_generation.items():
        if generation is None:
            conditions.append(D.cursor.in_(group))
        else:
            conditions.append(and_(D.cursor.in_(group), D.generation == generation))
    return conditions


async def apply_settled(conn: AsyncConnection, consumer: ConsumerState, settled: Settled
                        ) -> tuple[int, int]:
    """(acked, acks that matched no open delivery). acked_until follows the acks. Only a
    delivered row (attempts > 0) can be acked: a cursor never handed out is ignored."""
    total = len(settled.acks)
    acked = 0
    freed: set[str] = set()
    if settled.acks and conn.dialect.name == "postgresql":
        acked = len(await pg_claims.ack(await _raw(conn), consumer.id, settled.acks))
        settled = Settled([], settled.nacks)
    for condition in _cursor_match(settled.acks):
        result = await conn.execute(
            delete(D)
            .where(D.consumer_id == consumer.id, D.attempts > 0, condition)  # type: ignore[arg-type]
            .returning(D.record_key)
        )
        keys = result.scalars().all()
        acked += len(keys)
        freed.update(keys)
    for condition in _cursor_match(settled.nacks):
        await conn.execute(
            update(D)
            .where(D.consumer_id == consumer.id, D.attempts > 0, condition)  # type: ignore[arg-type]
            .values(holder=None, deadline=None)
        )
    if freed:
        await promote(conn, consumer.id, sorted(freed))
        lowest = select(func.min(D.cursor) - 1).where(D.consumer_id == consumer.id)
        await conn.execute(
            update(C).where(C.id == consumer.id)
            .values(acked_until=func.coalesce(lowest.scalar_subquery(), C.read_through))
        )
    return acked, total - acked


async def _raw(conn: AsyncConnection) -> Any:
    """The transaction's own psycopg connection."""
    return (await conn.get_raw_connection()).driver_connection


class Claims:
    def __init__(self, engine: AsyncEngine, event_log: EventLog) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._log = event_log

    async def settle(self, batches: dict[str, Settled]) -> tuple[int, int]:
        """Applies acks and nacks of several consumers in one transaction."""
        acked = unknown = 0
        async with self.engine.begin() as conn:
            for consumer_id in sorted(batches):
                try:
                    consumer = await lock(conn, consumer_id)
                except NotFound:
                    continue  # deleted meanwhile: nothing left to settle
                done, missed = await apply_settled(conn, consumer, batches[consumer_id])
                acked += done
                unknown += missed
        return acked, unknown

    async def claim(
        self,
        consumer_id: str,
        *,
        holder: str,
        want: int,
        through: int,
        now: datetime,
        settled: Settled,
        known: ConsumerState | None = None,
    ) -> Claim:
        """Applies `settled`, then leases up to `want` events to `holder`; `through`: a
        committed log position (the tail's), how far new events may be read; `known`:
        the consumer as last seen (its filter, for PostgreSQL's read in the first round
        trip)."""
        if self.postgres:
            return await self._claim_postgres(
                consumer_id, holder=holder, want=want, through=through, now=now,
                settled=settled, known=known,
            )
        async with self.engine.begin() as conn:
            consumer = await lock(conn, consumer_id)
            acked, unknown = await apply_settled(conn, consumer, settled)
            leased: list[Leased] = []
            more = False
            if want > 0:
                leased = await self._lease(conn, consumer, holder, want, now)
                if len(leased) < want and consumer.read_through < through:
                    before = consumer.read_through
                    consumer, fresh = await self._read_ahead(
                        conn, consumer, through, holder, want - len(leased), now
                    )
                    leased += fresh
                    more = before < consumer.read_through < through
            next_deadline = None
            if not leased and not more:
                next_deadline = (
                    await conn.execute(
                        select(func.min(D.deadline))
                        .where(D.consumer_id == consumer_id, D.deadline.is_not(None))
                    )
                ).scalar()
        return Claim(consumer, leased, next_deadline, acked, unknown, more)

    async def _claim_postgres(
        self, consumer_id: str, *, holder: str, want: int, through: int, now: datetime,
        settled: Settled, known: ConsumerState | None,
    ) -> Claim:
        """The claim in two round trips (pg_claims.open_claim and finish_claim), where
        one per statement cost more than the statements themselves."""
        limit = min(READ_BATCH, max(want, 100))
        read = None
        if want > 0 and (known is None or known.read_through < through):
            believed = known.filter if known is not None else EventFilter("", 0, "")
            read = (believed, through, limit, MAX_ROWS)
        async with self.engine.connect() as sa:
            conn = await _raw(sa)
            opened = await pg_claims.open_claim(
                conn, consumer_id, settled.acks, settled.nacks, read=read, want=want,
                now=now)
            if opened.row is None:
                raise not_found(consumer_id)
            consumer = state(opened.row)
            consumer = replace(consumer, created_at=consumer.created_at.astimezone(UTC))
            found = opened.read
            more = False
            if found is not None and read is not None and consumer.filter != read[0]:
                found, more = None, True  # not the filter it was read with: read again
            position = None
            new: list[tuple[int, str, datetime]] = []
            wires: dict[int, bytes] = {}
            if found is not None:
                position = through if len(found) < limit else found[-1][0]
                more = more or position < through
                for cursor, _, _, _, blob in found:
                    wire = with_cursor(cursor, blob)
                    event = notifier_pb2.NotificationEvent.FromString(wire)
                    new.append((cursor, record_key(event),
                                event.received_time.ToDatetime(tzinfo=UTC)))
                    wires[cursor] = wire
            acked_from = consumer.acked_until or 0
            deadline = now + timedelta(seconds=consumer.ack_deadline_seconds)
            rows = await pg_claims.finish_claim(
                conn, consumer_id, holder=holder, want=want, now=now, deadline=deadline,
                acked_from=acked_from, generation=consumer.generation, new=new,
                position=position,
            )
            if position is not None and position > consumer.read_through:
                consumer = replace(consumer, read_through=position)
            leased: list[Leased] = []
            for cursor, attempts, stored in rows:
                sent = wires.get(cursor) if stored is None else with_cursor(cursor, stored)
                if sent is not None:  # None: retention pruned it; the pruner counts it
                    leased.append(Leased(cursor, sent, attempts))
            next_deadline = None
            if not leased and not more:
                next_deadline = await pg_claims.next_deadline(conn, consumer_id, acked_from)
        return Claim(consumer, leased, next_deadline, opened.acked,
                     len(settled.acks) - opened.acked, more)

    async def _read_ahead(
        self, conn: AsyncConnection, consumer: ConsumerState, through: int, holder: str,
        room: int, now: datetime,
    ) -> tuple[ConsumerState, list[Leased]]:
        """Reads new events into deliveries; the heads among them, up to `room`, are
        inserted already leased (one write per event instead of an insert and a lease)."""
        rows = (
            await conn.execute(select(func.count()).where(D.consumer_id == consumer.id))
        ).scalar_one()
        if rows >= MAX_ROWS:
            return consumer, []
        # As many as there is room for: most are leased as they are inserted; an event
        # behind another of its record waits, leased to no one, for a later claim.
        limit = min(READ_BATCH, max(room, 100))
        read = await self._log.read_after(
            consumer.read_through, consumer.filter, limit, through=through
        )
        position = through if len(read) < limit else read[-1].cursor
        new = [self._row(consumer, item) for item in read]
        leased: list[Leased] = []
        if new:
            keys = sorted({str(row["record_key"]) for row in new})
            seen = set(
                (await conn.execute(
                    select(D.record_key).distinct()
                    .where(D.consumer_id == consumer.id, D.record_key.in_(keys))
                )).scalars().all()
            )
            deadline = now + timedelta(seconds=consumer.ack_deadline_seconds)
            for row, item in zip(new, read, strict=True):
                row["is_head"] = row["record_key"] not in seen
                seen.add(str(row["record_key"]))
                if row["is_head"] and len(leased) < room:
                    row.update(holder=holder, deadline=deadline, attempts=1)
                    leased.append(Leased(item.cursor, item.wire, 1))
            await conn.execute(insert(D), new)
        await conn.execute(update(C).where(C.id == consumer.id).values(read_through=position))
        return ConsumerState(**{**consumer.__dict__, "read_through": position}), leased

    @staticmethod
    def _row(consumer: ConsumerState, item: Logged) -> dict[str, object]:
        event = notifier_pb2.NotificationEvent.FromString(item.wire)
        return {
            "consumer_id": consumer.id,
            "cursor": item.cursor,
            "generation": consumer.generation,
            "record_key": record_key(event),
            "is_head": False,
            "received_at": event.received_time.ToDatetime(tzinfo=UTC),
            "attempts": 0,
            "holder": None,
            "deadline": None,
        }

    async def _lease(
        self, conn: AsyncConnection, consumer: ConsumerState, holder: str, want: int,
        now: datetime,
    ) -> list[Leased]:
        """Leases up to `want` heads already in deliveries (nacked, lapsed, or read ahead
        earlier), with their events."""
        deadline = now + timedelta(seconds=consumer.ack_deadline_seconds)
        ready = (
            await conn.execute(
                select(D.cursor, D.attempts)
                .where(
                    D.consumer_id == consumer.id,
                    D.is_head,
                    D.deadline.is_(None) | (D.deadline <= now),
                )
                .order_by(D.cursor)
                .limit(want)
            )
        ).all()
        if not ready:
            return []
        wires: dict[int, bytes] = {}
        for cursor, blob in (
            await conn.execute(
                select(E.cursor, E.event).where(E.cursor.in_([c for c, _ in ready]))
            )
        ).all():
            wires[cursor] = with_cursor(cursor, blob)
        # A row whose event retention pruned meanwhile is the pruner's to count.
        cursors = [cursor for cursor, _ in ready if cursor in wires]
        await conn.execute(
            update(D)
            .where(D.consumer_id == consumer.id, D.cursor.in_(cursors))
            .values(
                holder=holder,
                deadline=deadline,
                attempts=D.attempts + 1,
            )
        )
        return [
            Leased(cursor, wires[cursor], attempts + 1)
            for cursor, attempts in ready
            if cursor in wires
        ]
