"""Background pruning of events older than NOTIFIER_EVENT_RETENTION_SECONDS."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from notifier.events.log import EventLog, PruneHook
from servicekit.background import BackgroundTask

log = logging.getLogger(__name__)


class Pruner:
    def __init__(
        self,
        event_log: EventLog,
        retention_seconds: float,
        *,
        interval_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        before_delete: PruneHook | None = None,
    ) -> None:
        """`before_delete`: see EventLog.prune (consumers' expired_count)."""
        self._log = event_log
        self._before_delete = before_delete
        self._retention = timedelta(seconds=retention_seconds)
        self._interval = interval_seconds
        self._clock = clock
        self._task = BackgroundTask("event-pruner")

    async def prune_once(self) -> int:
        pruned = await self._log.prune(
            self._clock() - self._retention, before_delete=self._before_delete
        )
        if pruned:
            log.info("pruned %d events past the retention", pruned)
        return pruned

    def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.prune_once()
            except Exception as failed:  # the database may be down: try again next time
                log.warning("pruning events failed: %s", type(failed).__name__)
            await asyncio.sleep(self._interval)
