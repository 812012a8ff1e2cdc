"""Coalesces concurrent calls for the same key into one in-flight task: the broker's
refreshes and reads of a connection, the ingress's lookups of a subscription, Desk's key
sets."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from servicekit.deadline import Deadline
from servicekit.errors import ServiceError

log = logging.getLogger(__name__)

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self, *, log_failures: bool = True) -> None:
        """`log_failures`: log an unexpected error nobody may await (a background
        refresh); off where every task has a caller that gets the error itself."""
        self._tasks: dict[str, asyncio.Task[T]] = {}
        self._log_failures = log_failures

    def running(self, key: str) -> bool:
        return key in self._tasks

    def start(self, key: str, make: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """The task already running for `key`, or a new one made by `make`.

        The task belongs to no caller: a caller that gives up (deadline, cancel)
        leaves it running for the others, so work Zoho has begun is not thrown away.
        """
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(make())
            self._tasks[key] = task
            task.add_done_callback(functools.partial(self._finished, key))
        return task

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if task.cancelled():
            return
        # Retrieved here, so a failure nobody awaited (a background refresh) is
        # not reported as lost; expected domain errors are already recorded.
        error = task.exception()
        if error is not None and self._log_failures and not isinstance(error, ServiceError):
            log.error("a shared task for %s failed", key, exc_info=error)

    async def do(self, key: str, make: Callable[[], Awaitable[T]], deadline: Deadline) -> T:
        """The shared task's result, waited for until `deadline` (TimeoutError after)."""
        return await asyncio.wait_for(
            asyncio.shield(self.start(key, make)), deadline.wait_seconds()
        )

    async def cancel_all(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
