"""Consumers' domain core: create, read (with backlog), page, delete, seek, open a Pull,
and the expiry hook retention calls. The servicer only translates.

`backlog` is the consumer's delivery rows plus the matching events past its read
position. That second count is kept per consumer in this process and moved on by
counting only the ranges that changed since it was last asked (indexed ranges of the
log, never the whole log per call); a prune or a seek counts afresh.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from notifier.consumers import metrics
from notifier.consumers.acks import AckBatcher
from notifier.consumers.claims import Claims
from notifier.consumers.config import ConsumersConfig
from notifier.consumers.pulls import PullSession, Registry
from notifier.consumers.store import ConsumerState, ConsumerStore
from notifier.events.cursor import parse_cursor
from notifier.events.log import EventFilter, EventLog
from notifier.events.tail import LogTail
from servicekit.background import BackgroundTask
from servicekit.errors import CursorExpired

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Start:
    """Where a consumer starts, or where a seek moves it (none set: from now on)."""

    from_earliest: bool = False
    start_time: datetime | None = None
    after_cursor: str = ""


@dataclass(frozen=True)
class ConsumerView:
    state: ConsumerState
    backlog: int
    oldest_unacked: datetime | None


class _Ranges:
    """The log's bounds for one pass over consumers, with its range counts memoised."""

    def __init__(self, pruned: int, newest: int, store: ConsumerStore) -> None:
        self.pruned = pruned
        self.newest = newest
        self.deliveries: dict[str, tuple[int, datetime | None]] = {}
        self._store = store
        self._counts: dict[tuple[EventFilter, int, int], int] = {}
        self._first: dict[tuple[EventFilter, int], datetime | None] = {}

    async def count(self, event_filter: EventFilter, after: int, through: int) -> int:
        key = (event_filter, after, through)
        if key not in self._counts:
            self._counts[key] = await self._store.count_events(event_filter, after, through)
        return self._counts[key]

    async def first_received(self, event_filter: EventFilter, after: int) -> datetime | None:
        key = (event_filter, after)
        if key not in self._first:
            self._first[key] = await self._store.first_received(event_filter, after)
        return self._first[key]


@dataclass
class _Counted:
    generation: int
    pruned: int
    start: int
    newest: int
    count: int


class Consumers:
    def __init__(
        self, engine: AsyncEngine, event_log: EventLog, tail: LogTail, config: ConsumersConfig,
        *, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = ConsumerStore(engine)
        self.claims = Claims(engine, event_log)
        self.acks = AckBatcher(
            self.claims, interval=config.ack_flush_seconds, on_settled=self._wake
        )
        self.registry = Registry(self.claims, self.acks, tail, clock)
        self._log = event_log
        self._tail = tail
        self._config = config
        self._clock = clock
        self._counted: dict[str, _Counted] = {}
        self._gauges = BackgroundTask("consumer-gauges")

    def _wake(self, consumer_id: str) -> None:
        self.registry.wake(consumer_id)

    def start(self) -> None:
        self.acks.start()
        self._gauges.start(self._refresh_gauges())

    async def stop(self) -> None:
        await self._gauges.stop()
        await self.acks.stop()

    async def _position(self, start: Start) -> int:
        pruned, newest = await self._log.bounds()
        if start.after_cursor:
            after = parse_cursor(start.after_cursor)
            if after < pruned:
                raise CursorExpired()
            return after
        if start.from_earliest:
            return pruned
        if start.start_time is not None:
            return max(await self.store.position_at(start.start_time), pruned)
        return max(newest, self._tail.position)

    async def create(self, state: ConsumerState, start: Start) -> ConsumerView:
        position = await self._position(start)
        created = ConsumerState(**{
            **state.__dict__, "read_through": position, "created_at": self._clock(),
        })
        await self.store.create(created, self._config.max_consumers)
        return await self.get(state.id)

    async def get(self, consumer_id: str) -> ConsumerView:
        return await self._view(await self.store.get(consumer_id))

    async def page(self, after: str, limit: int) -> tuple[list[ConsumerView], str]:
        rows = await self.store.page(after, limit + 1)
        more = len(rows) > limit
        ranges = _Ranges(*await self._log.bounds(), self.store)
        ranges.deliveries = await self.store.all_delivery_counts()
        views = [await self._view(row, ranges) for row in rows[:limit]]
        return views, (rows[limit - 1].id if more else "")

    async def delete(self, consumer_id: str) -> None:
        await self.store.delete(consumer_id)
        self._forget(consumer_id)
        self.registry.wake(consumer_id)  # its Pulls here end NOT_FOUND at their next claim

    async def seek(self, consumer_id: str, start: Start) -> ConsumerView:
        await self.store.get(consumer_id)  # NOT_FOUND before anything else
        position = await self._position(start)
        view = await self._view(await self.store.seek(consumer_id, position))
        self.registry.wake(consumer_id)
        return view

    async def open_pull(
        self, consumer_id: str, max_outstanding: int,
        *, may_read: Callable[[ConsumerState], None] = lambda _consumer: None,
    ) -> PullSession:
        """`may_read` sees the consumer as read here and raises to refuse the caller."""
        consumer = await self.store.get(consumer_id)
        may_read(consumer)
        return PullSession(
            consumer, max_outstanding, acks=self.acks, tail=self._tail,
            registry=self.registry, poll_seconds=self._config.poll_seconds, clock=self._clock,
        )

    async def expire(self, conn: AsyncConnection, last: int) -> None:
        """Retention's hook (events/retention.py): in the prune's transaction."""
        expired = await self.store.expire(conn, last)
        if expired:
            metrics.EXPIRED.inc(expired)
            log.warning("retention pruned %d events consumers had not acknowledged", expired)

    async def _view(self, consumer: ConsumerState, ranges: _Ranges | None = None
                    ) -> ConsumerView:
        if ranges is None:
            ranges = _Ranges(*await self._log.bounds(), self.store)
            rows, oldest = await self.store.delivery_counts(consumer)
        else:
            rows, oldest = ranges.deliveries.get(consumer.id, (0, None))
        unread, start = await self._unread(consumer, ranges)
        if oldest is None and unread:
            oldest = await ranges.first_received(consumer.filter, start)
        return ConsumerView(consumer, rows + unread, oldest)

    async def _unread(self, consumer: ConsumerState, ranges: _Ranges) -> tuple[int, int]:
        """(matching events past the read position, that position)."""
        pruned, newest = ranges.pruned, ranges.newest
        start = max(consumer.read_through, pruned)
        before = self._counted.get(consumer.id)
        f = consumer.filter
        if (
            before is not None
            and (before.generation, before.pruned) == (consumer.generation, pruned)
            and before.start <= start <= before.newest <= newest
        ):
            count = (
                before.count
                - await ranges.count(f, before.start, start)
                + await ranges.count(f, before.newest, newest)
            )
        else:
            count = await ranges.count(f, start, newest)
        self._counted[consumer.id] = _Counted(consumer.generation, pruned, start, newest, count)
        return count, start

    def _forget(self, consumer_id: str) -> None:
        self._counted.pop(consumer_id, None)
        for gauge in (metrics.BACKLOG, metrics.OLDEST_UNACKED_AGE):
            try:
                gauge.remove(consumer_id)
            except KeyError:
                pass

    async def _refresh_gauges(self) -> None:
        while True:
            await asyncio.sleep(self._config.metrics_seconds)
            started = time.monotonic()
            try:
                await self.refresh_gauges()
            except Exception as failed:  # the database may be down: next time
                log.warning("refreshing consumer gauges failed: %s", type(failed).__name__)
            log.debug("consumer gauges took %.3f s", time.monotonic() - started)

    async def refresh_gauges(self) -> None:
        """Every consumer's backlog and oldest-unacked age into their gauges. One pass
        shares the log's bounds, one grouped count of deliveries, and each distinct range
        count (consumers with the same filter and position cost one query between them)."""
        seen: set[str] = set()
        after = ""
        ranges = _Ranges(*await self._log.bounds(), self.store)
        ranges.deliveries = await self.store.all_delivery_counts()
        while True:
            states = await self.store.page(after, 501)
            after = states[499].id if len(states) > 500 else ""
            for state in states[:500]:
                view = await self._view(state, ranges)
                seen.add(state.id)
                metrics.BACKLOG.labels(state.id).set(view.backlog)
                age = 0.0
                if view.oldest_unacked is not None:
                    age = (self._clock() - view.oldest_unacked).total_seconds()
                metrics.OLDEST_UNACKED_AGE.labels(state.id).set(max(age, 0.0))
            if not after:
                break
        for gone in set(self._counted) - seen:
            self._forget(gone)
