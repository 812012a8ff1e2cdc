"""One-page-ahead prefetch: order, the bound on what is fetched ahead, cancellation, and
when the next page's request leaves."""

from __future__ import annotations

import asyncio
from contextlib import aclosing

import pytest

from notifier import paging
from notifier.paging import Page, prefetching
from servicekit import outbound


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


class SignallingPages:
    """Page 1 at once; page 2's fetch "sends its request" (calls the request_sent hook
    its task was started with) only when the test says so."""

    def __init__(self) -> None:
        self.send = asyncio.Event()
        self.hooked: list[bool] = []

    async def fetch(self, page: int) -> Page[str, int]:
        if page == 1:
            return Page(["1a"], 2)
        hook = outbound.request_sent.get()
        self.hooked.append(hook is not None)
        await self.send.wait()
        if hook is not None:
            hook()
        await asyncio.sleep(3600)  # the answer never comes in these tests
        raise AssertionError("unreachable")


async def test_whole_pages_wait_for_the_next_request_to_leave_before_handing_a_page_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(paging, "SEND_WAIT_SECONDS", 30.0)
    pages = SignallingPages()
    async with aclosing(prefetching(1, pages.fetch, next_request_first=True)) as fetched:
        handed = asyncio.ensure_future(anext(fetched))
        await asyncio.sleep(0.05)
        assert not handed.done()  # page 2's request has not left: page 1 waits
        pages.send.set()
        assert await asyncio.wait_for(handed, 5) == ["1a"]
    assert pages.hooked == [True]


async def test_the_wait_for_the_next_request_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paging, "SEND_WAIT_SECONDS", 0.05)
    pages = SignallingPages()  # page 2's request never leaves
    async with aclosing(prefetching(1, pages.fetch, next_request_first=True)) as fetched:
        assert await asyncio.wait_for(anext(fetched), 5) == ["1a"]


async def test_item_by_item_the_page_is_handed_over_before_the_next_fetch_runs() -> None:
    pages = SignallingPages()
    async with aclosing(prefetching(1, pages.fetch)) as fetched:
        assert await anext(fetched) == ["1a"]
        assert pages.hooked == []  # started, not yet run: the caller's first await runs it
