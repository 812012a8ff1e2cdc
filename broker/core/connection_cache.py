"""This process's copies of connection rows: bounded staleness, one read per miss.

A copy at most BROKER_CACHE_SECONDS old is served as it is; past half that age it is
re-read in the background, together with the other copies due, in one query (one query
per connection is what a busy broker spent its CPU on: docs/performance.md).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from dataclasses import dataclass

from prometheus_client import Counter

from broker.storage.connection_store import ConnectionStore
from broker.storage.records import Connection
from servicekit.deadline import Deadline
from servicekit.errors import NotConnected, ServiceError, Unavailable
from servicekit.singleflight import SingleFlight

log = logging.getLogger(__name__)

CACHE = Counter("broker_token_cache_total", "GetToken answers by source", ["source"])


@dataclass
class _Cached:
    record: Connection
    read_at: float  # monotonic


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("re-reading cached connections failed", exc_info=task.exception())


class ConnectionCache:
    def __init__(self, store: ConnectionStore, cache_seconds: float) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}
        # Concurrent cache misses for one connection share one database read.
        self._reads: SingleFlight[Connection | None] = SingleFlight()
        # Copies due for a re-read, read together by _reread_due.
        self._due: set[str] = set()
        self._due_since = 0.0  # when the first copy now in _due fell due (monotonic)
        self._rereading: asyncio.Task[None] | None = None

    def forget(self, user_id: str) -> None:
        self._cache.pop(user_id, None)

    def remember(self, record: Connection) -> None:
        self._cache[record.user_id] = _Cached(record, time.monotonic())

    async def close(self) -> None:
        if self._rereading is not None:
            self._rereading.cancel()
            await asyncio.gather(self._rereading, return_exceptions=True)

    async def current(self, user_id: str, max_age: float | None = None) -> Connection:
        """The connection, from this process's copy when it is at most `max_age` old
        (BROKER_CACHE_SECONDS by default; 0: read the table)."""
        max_age = self.cache_seconds if max_age is None else max_age
        cached = self._cache.get(user_id)
        if cached is not None:
            age = time.monotonic() - cached.read_at
            if age <= max_age:
                if age > max_age / 2:
                    # Re-read ahead of time, so callers of a busy connection never wait
                    # for the database; the copy they get now is still within max_age.
                    self._reread_soon(user_id)
                return cached.record
        try:
            record = await self._reads.do(
                user_id, lambda: self._reload(user_id), Deadline.unbounded()
            )
        except Unavailable:
            if cached is None or max_age == 0.0:
                raise
            # The database is down: the copy this process holds is the best there is,
            # and get_token hands its token out only while it is still valid.
            CACHE.labels("stale_database_down").inc()
            return cached.record
        if record is None:
            raise NotConnected(user_id)
        return record

    def _reread_soon(self, user_id: str) -> None:
        if not self._due:
            self._due_since = time.monotonic()
        self._due.add(user_id)
        if self._rereading is None or self._rereading.done():
            self._rereading = asyncio.ensure_future(self._reread_due())
            self._rereading.add_done_callback(_log_failure)

    async def _reread_due(self) -> None:
        """Re-reads the copies that are due, together; those that fall due during a read
        go in the next round. A copy replaced or dropped while its row was being read is
        left as it is: what replaced it is at least as new."""
        while self._due:
            # Gather what falls due in the next quarter of BROKER_CACHE_SECONDS: each copy
            # served meanwhile is still within the bound, and copies read together fall
            # due together next time. The quarter counts from when the first of them fell
            # due, not from the end of the last read, which a slow database can make late.
            wait = self._due_since + self.cache_seconds / 4 - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            due, self._due = self._due, set()
            before = {user_id: self._cache.get(user_id) for user_id in due}
            try:
                rows = await self.store.get_many(sorted(due))
            except Unavailable:
                return  # the copies age out; the next caller's own read meets the outage
            except ServiceError:
                # One row this process cannot read (a key it lacks): read them one by
                # one, so only that connection's callers get its error.
                for user_id in due:
                    if not self._reads.running(user_id):
                        self._reads.start(user_id, functools.partial(self._reload, user_id))
                continue
            for user_id, seen in before.items():
                if self._cache.get(user_id) is not seen:
                    continue
                record = rows.get(user_id)
                if record is None:
                    self._cache.pop(user_id, None)
                else:
                    self.remember(record)

    async def _reload(self, user_id: str) -> Connection | None:
        """Reads the row into this process's copy (or drops the copy: no row)."""
        record = await self.store.get(user_id)
        if record is None:
            self._cache.pop(user_id, None)
        else:
            self.remember(record)
        return record
