"""Streams a paged list with one page fetched ahead.

While the caller consumes page N, page N+1 is already on its way, and no further:
memory holds at most two pages whatever the list's length. When the consumer
stops early (cancelled, error, closed), the fetch in flight is cancelled, which
cancels the HTTP request under it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from servicekit import outbound

Item = TypeVar("Item")
Cursor = TypeVar("Cursor")


class Converting(Sequence[Item]):
    """A page's items as Zoho sent them, each converted when it is read: the first item
    is on its way to the caller while the rest are still JSON (converting a page of 200
    first would hold the first item back by the whole page's conversion). A malformed
    item raises when it is reached, ending the stream there with the converter's error."""

    __slots__ = ("_convert", "_raw")

    def __init__(self, raw: Sequence[Any], convert: Callable[[Any], Item]) -> None:
        self._raw = raw
        self._convert = convert

    def __len__(self) -> int:
        return len(self._raw)

    @overload
    def __getitem__(self, index: int) -> Item: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Item]: ...
    def __getitem__(self, index: int | slice) -> Item | Sequence[Item]:
        if isinstance(index, slice):
            return [self._convert(raw) for raw in self._raw[index]]
        return self._convert(self._raw[index])

    def __iter__(self) -> Iterator[Item]:
        return map(self._convert, self._raw)


@dataclass(frozen=True)
class Page(Generic[Item, Cursor]):
    items: Sequence[Item]
    next: Cursor | None  # None: this was the last page


async def prefetching(
    first: Cursor,
    fetch: Callable[[Cursor], Awaitable[Page[Item, Cursor]]],
    *,
    next_request_first: bool = False,
) -> AsyncGenerator[Sequence[Item], None]:
    """Yields each page's items as the page arrives. Pages, not items, pass through
    the generator: the caller writes the items itself, so a 1,000-item list costs
    5 generator steps rather than 1,000 (measured: the per-item steps were a tenth of
    a stream's time).

    `next_request_first`: the next page's request leaves before a page is handed over.
    For a caller that sends a page as one message, which converts the whole page before
    its first await. A caller writing item by item leaves it off: its first write lets
    the request leave, and waiting would only hold the first item back."""
    pending: asyncio.Task[Page[Item, Cursor]] | None = _start(fetch, first)[0]
    try:
        while pending is not None:
            page = await pending
            pending = None
            if page.next is not None:
                pending, sent = _start(fetch, page.next)
                if next_request_first:
                    await _until_sent(pending, sent)
            yield page.items
    finally:
        if pending is not None:
            pending.cancel()
            # Wait for the cancellation to land (so no request outlives the stream) without
            # swallowing a cancellation of our own task.
            await asyncio.wait({pending})
            if not pending.cancelled():
                pending.exception()  # retrieved: an error nobody will see now is not an alarm


# How long the current page waits for the next page's request to leave. Normally it
# leaves within a few loop turns; this bounds the wait when it cannot yet (a token
# being refreshed first, a connection being opened).
SEND_WAIT_SECONDS = 0.005


def _start(
    fetch: Callable[[Cursor], Awaitable[Page[Item, Cursor]]], cursor: Cursor
) -> tuple[asyncio.Task[Page[Item, Cursor]], asyncio.Event]:
    """The fetch as a task whose HTTP request sets the returned event once it has left."""
    sent = asyncio.Event()
    context = contextvars.copy_context()
    context.run(outbound.request_sent.set, sent.set)

    async def run() -> Page[Item, Cursor]:
        return await fetch(cursor)

    return asyncio.get_running_loop().create_task(run(), context=context), sent


async def _until_sent(pending: asyncio.Task[Page[Item, Cursor]], sent: asyncio.Event) -> None:
    """Lets the next page's request leave before the caller works on this page: a task
    only runs when this one yields, and converting a page to one message is CPU work
    that would otherwise hold the request back by as long (measured: each page took
    31 ms where a direct read takes 26)."""
    waiter = asyncio.ensure_future(sent.wait())
    try:
        await asyncio.wait(
            {pending, waiter}, timeout=SEND_WAIT_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        waiter.cancel()
