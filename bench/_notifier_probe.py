"""`python bench/_notifier_probe.py`: the notifier exactly as `python -m notifier` wires it
(NotifierApp from the environment), with an HTTP transport that notes, on stderr, the
CLOCK_MONOTONIC time each Zoho page has fully arrived:

    PAGE_ARRIVED <monotonic seconds> <request path and query>

The streaming benchmark compares that with the time the first item reaches its client
(the same clock: one machine). Only the benchmark runs this; the service has no hook.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from notifier.app import NotifierApp
from notifier.config import NotifierConfig
from servicekit.logs import setup_logging
from servicekit.runner import run_until_signal


class ArrivalTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()  # httpx reads it all before the notifier sees it anyway
        print(f"PAGE_ARRIVED {time.monotonic():.6f} {request.url.raw_path.decode()}",
              file=sys.stderr, flush=True)
        headers = [(k, v) for k, v in response.headers.multi_items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=headers, content=body,
                              extensions=response.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve(config: NotifierConfig) -> int:
    app = NotifierApp(config, transport=ArrivalTransport())
    app.health.start()
    try:
        return await run_until_signal(app.server)
    finally:
        await app.close()


if __name__ == "__main__":
    config = NotifierConfig.from_env()
    setup_logging("notifier", fmt=config.log_format, level=config.log_level)
    raise SystemExit(asyncio.run(serve(config)))
