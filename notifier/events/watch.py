"""WatchNotifications' domain side: where a watch starts, its backlog from the database,
then the live tail, as batches of events in cursor order with none repeated.

Every event after the start is owed exactly once: the tail registration fixes a point
P; the backlog is read from the database up to P, and the tail hands over everything
after it. A watcher the tail dropped (too far behind) reads from the database again
from its last cursor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

from notifier.events.log import EventFilter, EventLog, Logged
from notifier.events.tail import LogTail
from notifier.events.watch_query import WatchQuery
from servicekit.errors import CursorExpired

BACKLOG_PAGE = 1000


class Watches:
    def __init__(self, event_log: EventLog, tail: LogTail) -> None:
        self._log = event_log
        self._tail = tail

    async def start_position(self, query: WatchQuery) -> int:
        pruned, newest = await self._log.bounds()
        if query.after is not None:
            if query.after < pruned:
                raise CursorExpired()
            return query.after
        if query.from_earliest:
            return pruned
        # "From the call": what this replica's tail has seen may lag the database.
        return max(newest, self._tail.position)

    async def stream(
        self, query: WatchQuery, start: int
    ) -> AsyncGenerator[list[bytes], None]:
        """Every matching event after `start` (from start_position), then the live tail,
        each a serialized NotificationEvent (see events/wire.py)."""
        event_filter = EventFilter(query.user_id, query.app_type, query.subscription_id)
        last = start
        while True:
            subscription = self._tail.subscribe(event_filter)
            try:
                async for batch in self._backlog(last, subscription.since, event_filter):
                    last = batch[-1][0]
                    yield [item.wire for item in batch]
                while not subscription.overflowed:
                    fresh = [item for item in await subscription.take() if item[0] > last]
                    if fresh:
                        last = fresh[-1][0]
                        yield [item.wire for item in fresh]
            finally:
                self._tail.unsubscribe(subscription)

    async def _backlog(
        self, after: int, through: int, event_filter: EventFilter
    ) -> AsyncIterator[list[Logged]]:
        """Pages of (after, through], the next page read while this one is sent."""
        if after >= through:
            return
        pending = asyncio.ensure_future(self._page(after, through, event_filter))
        try:
            while True:
                page = await pending
                if not page:
                    return
                if len(page) == BACKLOG_PAGE:
                    pending = asyncio.ensure_future(self._page(page[-1][0], through, event_filter))
                yield page
                if len(page) < BACKLOG_PAGE:
                    return
        finally:
            if not pending.done():
                pending.cancel()

    async def _page(self, after: int, through: int, event_filter: EventFilter) -> list[Logged]:
        pruned, _ = await self._log.bounds()
        if after < pruned:
            # A watcher slower than the retention: what it has not seen is gone.
            raise CursorExpired()
        return await self._log.read_after(after, event_filter, BACKLOG_PAGE, through=through)
