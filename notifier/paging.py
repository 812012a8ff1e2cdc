"""Streams a paged list with one page fetched ahead.

While the caller consumes page N, page N+1 is already on its way, and no further:
memory holds at most two pages whatever the list's length. When the consumer
stops early (cancelled, error, closed), the fetch in flight is cancelled, which
cancels the HTTP request under it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Cursor = TypeVar("Cursor")


@dataclass(frozen=True)
class Page(Generic[Item, Cursor]):
    items: Sequence[Item]
    next: Cursor | None  # None: this was the last page


async def prefetching(
    first: Cursor, fetch: Callable[[Cursor], Awaitable[Page[Item, Cursor]]]
) -> AsyncGenerator[Item, None]:
    pending: asyncio.Future[Page[Item, Cursor]] | None = asyncio.ensure_future(fetch(first))
    try:
        while pending is not None:
            page = await pending
            pending = asyncio.ensure_future(fetch(page.next)) if page.next is not None else None
            for item in page.items:
                yield item
    finally:
        if pending is not None:
            pending.cancel()
            # Wait for the cancellation to land (so no request outlives the stream) without
            # swallowing a cancellation of our own task.
            await asyncio.wait({pending})
            if not pending.cancelled():
                pending.exception()  # retrieved: an error nobody will see now is not an alarm
