"""A real HTTP receiver for the sandbox's callbacks and Desk's URL check.

- `receiver` (function, async): a `Receiver` on a free loopback port. `receiver.url(path)`
  is a URL to subscribe with; `receiver.answer(path, status, delay=0)` sets what that
  path answers (default 200, for GET and POST alike); `receiver.requests(path=None)` lists
  what arrived (`method`, `path`, `query`, `headers`, `body` bytes, `json()`);
  `await receiver.wait_for(n, path=None, timeout=5)` waits until n requests arrived.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

__all__ = ["Receiver", "receiver", "start_receiver"]


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    origin: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, tuple[int, float]] = field(default_factory=dict)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    def url(self, path: str = "/hook") -> str:
        return self.origin + path

    def answer(self, path: str, status: int, delay: float = 0.0) -> None:
        self.answers[path] = (status, delay)

    def requests(self, path: str | None = None, method: str | None = None) -> list[Received]:
        return [
            r
            for r in self.received
            if (path is None or r.path == path) and (method is None or r.method == method)
        ]

    async def wait_for(self, count: int, path: str | None = None, timeout: float = 5.0) -> None:
        async with self._arrived:
            await asyncio.wait_for(
                self._arrived.wait_for(lambda: len(self.requests(path, "POST")) >= count), timeout
            )

    async def _handle(self, request: web.Request) -> web.Response:
        status, delay = self.answers.get(request.path, (200, 0.0))
        self.received.append(
            Received(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                await request.read(),
            )
        )
        async with self._arrived:
            self._arrived.notify_all()
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, text="ok")


async def start_receiver() -> tuple[Receiver, web.AppRunner]:
    recv = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recv._handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recv.origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
    return recv, runner


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv, runner = await start_receiver()
    try:
        yield recv
    finally:
        await runner.cleanup()
