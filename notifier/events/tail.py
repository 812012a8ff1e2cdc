"""One reader of the log's newest events per process, fanned out to every live watcher.

Each watcher registers a queue and is owed every event after the tail's position at
that moment; it reads what came before from the database itself (events/watch.py).
So a delivery costs one query per process, not one per watcher. A watcher that falls
too far behind is dropped from the fan-out and reads from the database again."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from notifier.events.log import EventFilter, EventLog, Logged
from servicekit.background import BackgroundTask

log = logging.getLogger(__name__)

READ_BATCH = 1000
MAX_QUEUED = 10_000


class TailSubscription:
    def __init__(self, event_filter: EventFilter, since: int) -> None:
        self.filter = event_filter
        self.since = since
        self.overflowed = False
        self._queue: deque[Logged] = deque()
        self._ready = asyncio.Event()

    def push(self, item: Logged) -> bool:
        if len(self._queue) >= MAX_QUEUED:
            self.overflowed = True
            self._ready.set()
            return False
        self._queue.append(item)
        self._ready.set()
        return True

    async def take(self) -> list[Logged]:
        """Everything queued, waiting until there is something (or it overflowed)."""
        while not self._queue and not self.overflowed:
            self._ready.clear()
            await self._ready.wait()
        items = list(self._queue)
        self._queue.clear()
        return items


class TailNudge(TailSubscription):
    """For a reader that reads the log itself (a consumer's Pull): holds no events, only
    calls `wake` when a matching one is committed."""

    def __init__(self, event_filter: EventFilter, since: int, wake: Callable[[], None]) -> None:
        super().__init__(event_filter, since)
        self._wake = wake

    def push(self, item: Logged) -> bool:
        self._wake()
        return True


class LogTail:
    def __init__(self, event_log: EventLog, *, poll_seconds: float) -> None:
        self._log = event_log
        self._poll = poll_seconds
        self.position = 0
        self._subscriptions: set[TailSubscription] = set()
        self._wake = asyncio.Event()
        self._task = BackgroundTask("event-tail")

    async def start(self) -> None:
        _, self.position = await self._log.bounds()
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    def wake(self) -> None:
        """New events were committed (here, or NOTIFY from another replica)."""
        self._wake.set()

    def committed(self, stored: list[Logged]) -> None:
        """This process's writer committed `stored`. When they follow the position
        directly (nothing of another replica's in between), they are fanned out as they
        are, without reading them back; otherwise the log is read."""
        if not stored or not self._task.running:
            self.wake()
            return
        expected = self.position + 1
        if any(item.cursor != expected + i for i, item in enumerate(stored)):
            self.wake()
            return
        self._fan_out(stored)

    def subscribe(
        self, event_filter: EventFilter, *, wake: Callable[[], None] | None = None
    ) -> TailSubscription:
        """`wake`: a TailNudge that calls it instead of queueing events."""
        subscription = (
            TailSubscription(event_filter, self.position)
            if wake is None
            else TailNudge(event_filter, self.position, wake)
        )
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: TailSubscription) -> None:
        self._subscriptions.discard(subscription)

    @property
    def watchers(self) -> int:
        return len(self._subscriptions)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)
            self._wake.clear()
            try:
                await self._read_new()
            except Exception as failed:  # the database may be down: the poll retries
                log.warning("reading new events failed: %s", type(failed).__name__)

    async def _read_new(self) -> None:
        everything = EventFilter()
        while True:
            read = await self._log.read_after(self.position, everything, READ_BATCH)
            # What `committed` fanned out meanwhile is not sent twice.
            batch = [item for item in read if item[0] > self.position]
            if batch:
                self._fan_out(batch)
            if len(read) < READ_BATCH:
                return

    def _fan_out(self, batch: list[Logged]) -> None:
        # No await between fan-out and moving the position: a watcher registered
        # meanwhile is owed exactly what comes after the position it saw.
        for item in batch:
            for subscription in list(self._subscriptions):
                if subscription.filter.matches(item) and not subscription.push(item):
                    self._subscriptions.discard(subscription)
        self.position = batch[-1][0]
