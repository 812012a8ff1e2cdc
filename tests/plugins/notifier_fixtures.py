"""The notifier as its tests (and anyone else's) use it: a real server on 127.0.0.1:0,
wired exactly as `zoho-notifier` wires it, talking to the real broker fixture and the
real sandbox. Its HTTP transport is the real one, wrapped to count requests in flight."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import httpx
import pytest

from notifier.app import NotifierApp
from notifier.config import NotifierConfig, RetryPolicy
from servicekit.config import ListenAddress
from zoho.notifier.v1 import notifier_pb2_grpc


class SpyTransport(httpx.AsyncBaseTransport):
    """The real transport, counting requests that start, end and are cancelled."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.started = 0
        self.in_flight = 0
        self.cancelled = 0
        self._changed = asyncio.Event()
        # Runs before each request leaves: tests use it to change the sandbox at an exact
        # point of a stream (invalidate the token before page 2, break page 2, ...).
        self.before: Callable[[httpx.Request, int], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started += 1
        if self.before is not None:
            await self.before(request, self.started)
        self.in_flight += 1
        self._notify()
        try:
            return await self.inner.handle_async_request(request)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, condition: Callable[[SpyTransport], bool], limit: float = 10.0) -> None:
        """Waits for `condition` (a guard against hanging, not a timing assertion)."""
        async with asyncio.timeout(limit):
            while not condition(self):
                await self._changed.wait()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class NotifierHandle:
    app: NotifierApp
    address: str
    channel: grpc.aio.Channel
    stub: notifier_pb2_grpc.NotifierServiceStub
    http: SpyTransport


def notifier_config(sandbox_origin: str, broker_target: str, **overrides: object) -> NotifierConfig:
    settings: dict[str, object] = {
        "listen": ListenAddress("127.0.0.1", 0),
        "broker_target": broker_target,
        "extra_origins": (sandbox_origin,),
        # Quick retries keep the suite fast; the bound is what the tests count.
        "retry": RetryPolicy(
            max_attempts=3,
            backoff_seconds=0.01,
            max_backoff_seconds=0.05,
            request_timeout_seconds=5.0,
        ),
        "health_interval_seconds": 0.1,
    }
    settings.update(overrides)
    return NotifierConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def notifier(sandbox, broker) -> AsyncIterator[NotifierHandle]:
    spy = SpyTransport()
    app = NotifierApp(notifier_config(sandbox.origin, broker.address), transport=spy)
    address = await app.start()
    channel = grpc.aio.insecure_channel(address)
    try:
        yield NotifierHandle(
            app, address, channel, notifier_pb2_grpc.NotifierServiceStub(channel), spy
        )
    finally:
        await channel.close()
        await app.stop(0)
