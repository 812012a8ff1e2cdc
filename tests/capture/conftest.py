"""A notifier with change capture on, its clock following the sandbox's, driven by
`settle()` so Zoho's time passes in a control call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest

from notifier.app import NotifierApp
from notifier.capture.config import CaptureConfig
from notifier.capture.service import Capture
from notifier.keeper.config import KeeperConfig
from servicekit.runner import running
from tests.live.helpers import Watcher, crm_subscription
from tests.plugins.live_fixtures import connect_subscriber  # noqa: F401
from tests.plugins.notifier_fixtures import NotifierHandle, SpyTransport, notifier_config
from zoho.notifier.v1 import notifier_pb2 as pb
from zoho.notifier.v1 import notifier_pb2_grpc

SWEEP = 120.0
SETTLE = 3.0


def capture_config(**overrides: Any) -> CaptureConfig:
    settings: dict[str, Any] = {
        "sweep_seconds": SWEEP, "settle_seconds": SETTLE,
        # The loop is driven by settle(); its own ticks only add noise.
        "tick_seconds": 600.0, "retry_base_seconds": 30.0,
    }
    settings.update(overrides)
    return CaptureConfig(**settings)


@dataclass
class Captured:
    handle: NotifierHandle
    sandbox: Any

    @property
    def stub(self) -> notifier_pb2_grpc.NotifierServiceStub:
        return self.handle.stub

    @property
    def capture(self) -> Capture:
        assert self.handle.app.capture is not None
        return self.handle.app.capture

    async def advance(self, seconds: float) -> None:
        """Zoho's clock moves past the settle margin; what is due is read back."""
        if seconds:
            await self.sandbox.advance_clock(seconds)
        await self.sandbox.wait_for_deliveries(10)
        await self.capture.settle()

    async def events(self, subscription_id: str, count: int) -> list[pb.NotificationEvent]:
        watcher = Watcher(self.stub, subscription_id=subscription_id, from_earliest=True)
        try:
            await watcher.wait_for(count, limit=60)
            await asyncio.sleep(0.3)  # a second copy, were there one, would come now
            return list(watcher.events)
        finally:
            await watcher.stop()

    async def subscription(self, subscription_id: str) -> pb.Subscription:
        return await self.stub.GetSubscription(
            pb.GetSubscriptionRequest(user_id="demo", subscription_id=subscription_id),
            timeout=10,
        )


async def subscribed(
    captured: Captured, events: tuple[str, ...] = ("Leads.all",)
) -> pb.Subscription:
    """The demo user's CRM subscription to `events`, its start past the settle margin:
    what a window read back later is measured from."""
    sub, _ = await crm_subscription(captured.handle, captured.sandbox, events=events)
    await captured.advance(SETTLE + 1)
    return sub


@asynccontextmanager
async def captured_notifier(
    sandbox: Any, broker: Any, database_url: str, *, retention_seconds: float | None = None,
    **capture: Any,
) -> AsyncIterator[Captured]:
    """`retention_seconds`: the event log's NOTIFIER_EVENT_RETENTION_SECONDS."""
    keeper = KeeperConfig(tick_seconds=600.0, clock_url=sandbox.origin + "/_sandbox/clock")
    config = notifier_config(
        sandbox.origin, broker.address, database_url,
        keeper=keeper, capture=capture_config(**capture),
    )
    if retention_seconds is not None:
        config = replace(config, events=replace(
            config.events, event_retention_seconds=retention_seconds))
    app = NotifierApp(config, transport=SpyTransport())
    async with running(app, grace=0, migrate=False) as address:
        channel = grpc.aio.insecure_channel(address)
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        handle = NotifierHandle(app, address, channel, stub, app.http._transport)  # type: ignore[arg-type]
        # The keeper's start-up reconcile first: a notifier restarted on the same database
        # finds its channels pointing at the old ingress port and repairs them, and the gap
        # that repair reads back is due settle seconds after the moment it runs. Left to
        # race a test's clock moves, it could land after them and wait on a clock no test
        # moves again (seen in CI: a start read put off past the test's last advance).
        assert app.keeper is not None
        await app.keeper.settle()
        try:
            yield Captured(handle, sandbox)
        finally:
            await channel.close()


@pytest.fixture
async def captured(sandbox, broker, notifier_database_url) -> AsyncIterator[Captured]:
    async with captured_notifier(sandbox, broker, notifier_database_url) as notifier:
        yield notifier
