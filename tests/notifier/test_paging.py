"""One-page-ahead prefetch: order, the bound on what is fetched ahead, and cancellation."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from notifier.paging import Page, prefetching


class Pages:
    """Three pages of 2 items; each fetch waits until the test releases it."""

    def __init__(self, last: int = 3) -> None:
        self.last = last
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.release: dict[int, asyncio.Event] = {}

    def gate(self, page: int) -> asyncio.Event:
        return self.release.setdefault(page, asyncio.Event())

    async def fetch(self, page: int) -> Page[str, int]:
        self.started.append(page)
        try:
            await self.gate(page).wait()
        except asyncio.CancelledError:
            self.cancelled.append(page)
            raise
        return Page([f"{page}a", f"{page}b"], page + 1 if page < self.last else None)


async def test_every_item_in_order() -> None:
    pages = Pages()
    for page in (1, 2, 3):
        pages.gate(page).set()
    items = [item async for page in prefetching(1, pages.fetch) for item in page]
    assert items == ["1a", "1b", "2a", "2b", "3a", "3b"]


async def test_fetches_the_next_page_while_the_current_is_consumed_and_no_further() -> None:
    pages = Pages()
    pages.gate(1).set()
    async with aclosing(prefetching(1, pages.fetch)) as fetched:
        assert await anext(fetched) == ["1a", "1b"]
        await asyncio.sleep(0)  # let the prefetch task start
        assert pages.started == [1, 2]
        # Page 2 is not back yet: page 3 must not have been asked for.
        waiting = asyncio.ensure_future(anext(fetched))
        await asyncio.sleep(0)
        assert pages.started == [1, 2]
        pages.gate(2).set()
        assert await waiting == ["2a", "2b"]
        await asyncio.sleep(0)
        assert pages.started == [1, 2, 3]


async def test_closing_early_cancels_the_fetch_in_flight() -> None:
    pages = Pages()
    pages.gate(1).set()
    async with aclosing(prefetching(1, pages.fetch)) as fetched:
        assert await anext(fetched) == ["1a", "1b"]
        await asyncio.sleep(0)
    assert pages.cancelled == [2]


async def test_an_error_on_a_later_page_comes_after_the_items_before_it() -> None:
    async def fetch(page: int) -> Page[str, int]:
        if page == 2:
            raise RuntimeError("page 2 failed")
        return Page(["1a"], 2)

    got = []
    with pytest.raises(RuntimeError, match="page 2"):
        async for page in prefetching(1, fetch):
            got.extend(page)
    assert got == ["1a"]
