"""Group commit: deliveries arriving together share one transaction.

Each ingress request waits for the commit that holds its events, so it answers 200
only once they are durable; at hundreds of deliveries a second that is a handful of
commits instead of one each (and, on PostgreSQL, one advisory lock per batch)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from notifier.events.log import EventLog, Logged, LogWriter, NewEvent
from servicekit.background import BackgroundTask

log = logging.getLogger(__name__)

MAX_BATCH_EVENTS = 1000
# A commit the database has not confirmed by then failed (the senders get 503): a
# connection to a host that vanished would otherwise wait for TCP to give up, minutes.
COMMIT_SECONDS = 15.0


class EventWriter:
    def __init__(self, event_log: EventLog, on_committed: Callable[[list[Logged]], None]) -> None:
        """`on_committed(stored)`: the new events of each commit, in cursor order."""
        self._log = event_log
        self._on_committed = on_committed
        self._pending: list[tuple[Sequence[NewEvent], asyncio.Future[int]]] = []
        self._kick = asyncio.Event()
        self._task = BackgroundTask("event-writer")
        # One connection kept for every commit (a pool checkout, and PostgreSQL's
        # pre-ping, per commit were a third of the writer's round trips).
        self._conn: LogWriter | None = None

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        await self._drop_connection()
        for _, waiter in self._pending:
            if not waiter.done():
                waiter.set_exception(ConnectionError("the notifier is stopping"))
        self._pending.clear()

    async def append(self, events: Sequence[NewEvent]) -> int:
        """Returns once `events` are committed: how many were new (not duplicates)."""
        if not events:
            return 0
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((events, waiter))
        self._kick.set()
        return await waiter

    async def _run(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            while self._pending:
                batch: list[tuple[Sequence[NewEvent], asyncio.Future[int]]] = []
                size = 0
                while self._pending and (not batch or size < MAX_BATCH_EVENTS):
                    item = self._pending.pop(0)
                    batch.append(item)
                    size += len(item[0])
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[Sequence[NewEvent], asyncio.Future[int]]]) -> None:
        events = [event for item, _ in batch for event in item]
        try:
            async with asyncio.timeout(COMMIT_SECONDS):
                stored = await self._append(events)
        except Exception as failed:
            log.warning("storing %d events failed: %s", len(events), type(failed).__name__)
            await self._drop_connection()
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(failed)
            return
        # The writer does not know which events were duplicates per request; the
        # stored count is per batch. Every request's events are committed either way.
        for item, waiter in batch:
            if not waiter.done():
                waiter.set_result(len(item))
        self._on_committed(stored)

    async def _append(self, events: list[NewEvent]) -> list[Logged]:
        fresh = self._conn is None
        if self._conn is None:
            self._conn = await self._log.writer_connection()
        try:
            return await self._log.append(events, datetime.now(UTC), self._conn)
        except Exception:
            if fresh:
                raise
        # The kept connection may have died since the last commit (the database
        # restarted, a proxy dropped it): the first delivery after the database is
        # back must not be refused for that. One more try, on a new connection; a
        # batch the dead one did commit is not stored twice (dedupe keys).
        await self._drop_connection()
        self._conn = await self._log.writer_connection()
        return await self._log.append(events, datetime.now(UTC), self._conn)

    async def _drop_connection(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.close()
