"""Two small HTTP servers for hostile-response tests, served in-process on loopback.

- `HostileZoho`: an allowed origin (the tests put it in ZOHO_EXTRA_ORIGINS) whose every
  answer the test chooses: truncated, wrong types, huge, a redirect elsewhere...
- `Trap`: an origin nobody allowed. Any request that reaches it is an escape; tests
  assert its hit count stays 0.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Answer = Callable[[web.Request], web.StreamResponse]


class Server:
    def __init__(self) -> None:
        self.hits: list[str] = []
        self.origin = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(f"{request.method} {request.path}")
        return self.answer(request)

    def answer(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"trapped": True})


class HostileZoho(Server):
    def __init__(self) -> None:
        super().__init__()
        self.reply: Answer = lambda request: web.json_response({})

    def answer(self, request: web.Request) -> web.StreamResponse:
        return self.reply(request)


class Trap(Server):
    pass


@asynccontextmanager
async def serve(server: Server) -> AsyncIterator[Server]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    server.origin = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        await runner.cleanup()
