"""Waiting for a positive signal instead of sleeping: a negative assertion ("nothing
else came", "still refused") means something only once what should have come has."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool | Awaitable[bool]], limit: float = 20.0,
                every: float = 0.02) -> None:
    """Polls `condition` (plain or async) until it holds: a guard against hanging, not a
    timing assertion (TimeoutError after `limit`)."""
    async with asyncio.timeout(limit):
        while True:
            held = condition()
            if inspect.isawaitable(held):
                held = await held
            if held:
                return
            await asyncio.sleep(every)
