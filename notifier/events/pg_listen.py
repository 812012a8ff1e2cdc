"""PostgreSQL LISTEN: another replica's committed events wake this replica's tail."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg

from notifier.events.log_postgres import NOTIFY_CHANNEL
from servicekit.background import BackgroundTask

log = logging.getLogger(__name__)


class PostgresListener:
    def __init__(self, conninfo: str, on_notify: Callable[[], None]) -> None:
        self._conninfo = conninfo
        self._on_notify = on_notify
        self._task = BackgroundTask("pg-listen")
        self.listening = asyncio.Event()

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.listening.set()
                    # Anything committed while we were not listening: the tail re-reads.
                    self._on_notify()
                    async for _ in conn.notifies():
                        self._on_notify()
            except asyncio.CancelledError:
                raise
            except Exception as failed:  # the tail's poll covers the gap until we are back
                self.listening.clear()
                log.warning("LISTEN connection lost (%s); reconnecting", type(failed).__name__)
                await asyncio.sleep(1.0)
