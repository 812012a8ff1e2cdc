"""One CRM org's instant-notification subscriptions ("watch" items).

Zoho returns one item per (channel, module). Items are kept as the exact JSON objects the GET
answers with, in insertion order (Zoho's order). Filtered views are cached and dropped on any
write, so a GET page is a slice, not a scan: reads vastly outnumber writes in every test and
benchmark.

An expired item is gone, as at Zoho (it is neither listed nor delivers): `expire(now)` drops
them, and costs a scan only when the earliest expiry has passed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sandbox.clock import parse_iso

WatchItem = dict[str, Any]
PageKey = tuple[str | None, str | None, int, int]
MAX_CACHED_PAGES = 1024


class CrmStore:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], WatchItem] = {}
        self._by_channel: dict[str, dict[str, WatchItem]] = {}
        self._views: dict[tuple[str | None, str | None], list[WatchItem]] = {}
        # Serialized GET bodies: a 200-item page costs about a millisecond to encode, which
        # would cap a benchmark well below what the server can otherwise answer.
        self._pages: dict[PageKey, bytes | None] = {}
        self._expires: dict[tuple[str, str], float] = {}
        self._next_expiry = math.inf

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: WatchItem) -> None:
        """Insert or replace the item for its (channel_id, resource_name)."""
        key = (item["channel_id"], item["resource_name"])
        self._items[key] = item
        self._by_channel.setdefault(key[0], {})[key[1]] = item
        self.set_expiry(item)
        self.touch()

    def set_expiry(self, item: WatchItem) -> None:
        """Re-read `item`'s channel_expiry; call after changing it in place."""
        expires = parse_iso(item["channel_expiry"]) or math.inf
        self._expires[(item["channel_id"], item["resource_name"])] = expires
        self._next_expiry = min(self._next_expiry, expires)

    def expire(self, now: float) -> None:
        """Drop every item whose channel_expiry has passed."""
        if now < self._next_expiry:
            return
        for channel_id, module in [k for k, at in self._expires.items() if at <= now]:
            self.remove(channel_id, module)
        self._next_expiry = min(self._expires.values(), default=math.inf)

    def remove(self, channel_id: str, module: str) -> WatchItem | None:
        item = self._items.pop((channel_id, module), None)
        self._expires.pop((channel_id, module), None)
        if item is not None:
            modules = self._by_channel[channel_id]
            del modules[module]
            if not modules:
                del self._by_channel[channel_id]
            self.touch()
        return item

    def remove_channel(self, channel_id: str) -> list[WatchItem]:
        modules = self._by_channel.get(channel_id)
        if not modules:
            return []
        return [item for m in list(modules) if (item := self.remove(channel_id, m))]

    def touch(self) -> None:
        """Drop cached views and pages; call after changing a stored item in place."""
        self._views.clear()
        self._pages.clear()

    def page_body(
        self, module: str | None, channel_id: str | None, page: int, per_page: int
    ) -> bytes | None:
        """The JSON body of one GET page, or None when the page is empty (Zoho's 204)."""
        key = (module, channel_id, page, per_page)
        if key in self._pages:
            return self._pages[key]
        items = self.query(module, channel_id)
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]
        body = None
        if chunk:
            info = {
                "per_page": per_page,
                "count": len(chunk),
                "page": page,
                "more_records": start + per_page < len(items),
            }
            body = json.dumps({"watch": chunk, "info": info}, separators=(",", ":")).encode()
        if len(self._pages) >= MAX_CACHED_PAGES:
            self._pages.clear()
        self._pages[key] = body
        return body

    def channel(self, channel_id: str) -> dict[str, WatchItem]:
        """module -> item for one channel (empty when unknown)."""
        return self._by_channel.get(channel_id, {})

    def query(self, module: str | None = None, channel_id: str | None = None) -> list[WatchItem]:
        key = (module, channel_id)
        view = self._views.get(key)
        if view is None:
            if channel_id is not None:
                # Both dicts see the same puts and removes, so a channel's modules are already
                # in the store's (Zoho's) order.
                source = list(self._by_channel.get(channel_id, {}).values())
            else:
                source = list(self._items.values())
            view = [it for it in source if module is None or it["resource_name"] == module]
            self._views[key] = view
        return view

    def clear(self) -> None:
        self._items.clear()
        self._by_channel.clear()
        self._expires.clear()
        self._next_expiry = math.inf
        self.touch()
