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
) -> AsyncGenerator[Sequence[Item], None]:
    """Yields each page's items as the page arrives. Pages, not items, pass through
    the generator: the caller writes the items itself, so a 1,000-item list costs
    5 generator steps rather than 1,000 (measured: the per-item steps were a tenth of
    a stream's time)."""
    pending: asyncio.Future[Page[Item, Cursor]] | None = asyncio.ensure_future(fetch(first))
    try:
        while pending is not None:
            page = await pending
            pending = asyncio.ensure_future(fetch(page.next)) if page.next is not None else None
            yield page.items
    finally:
        if pending is not None:
            pending.cancel()
            # Wait for the cancellation to land (so no request outlives the stream) without
            # swallowing a cancellation of our own task.
            await asyncio.wait({pending})
            if not pending.cancelled():
                pending.exception()  # retrieved: an error nobody will see now is not an alarm
