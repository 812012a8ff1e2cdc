"""A notifier whose keeper follows the sandbox's clock, so days pass in a control call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from sqlalchemy import select

from notifier.app import NotifierApp
from notifier.database.models import SubscriptionRow
from notifier.keeper.config import KeeperConfig
from notifier.keeper.models import KeeperSubscription
from notifier.keeper.service import Keeper
from servicekit.runner import running
from tests.plugins.live_fixtures import callbacks, connect_subscriber  # noqa: F401
from tests.plugins.notifier_fixtures import NotifierHandle, SpyTransport, notifier_config
from zoho.notifier.v1 import notifier_pb2_grpc

DAY = 86400.0
TTL = 604800.0
RENEW_BEFORE = 172800.0
RECONCILE = 1800.0
PROBE = 60.0


def keeper_config(sandbox_origin: str, **overrides: Any) -> KeeperConfig:
    settings: dict[str, Any] = {
        "renew_before_seconds": RENEW_BEFORE,
        "reconcile_seconds": RECONCILE,
        # The loop is driven by settle(); its own ticks only add noise.
        "tick_seconds": 600.0,
        "lease_seconds": 30.0,
        "blocked_probe_seconds": PROBE,
        "retry_base_seconds": 60.0,
        "retry_max_seconds": 3600.0,
        "clock_url": sandbox_origin + "/_sandbox/clock",
    }
    settings.update(overrides)
    return KeeperConfig(**settings)


@dataclass
class Kept:
    handle: NotifierHandle
    sandbox: Any

    @property
    def stub(self) -> notifier_pb2_grpc.NotifierServiceStub:
        return self.handle.stub

    @property
    def keeper(self) -> Keeper:
        assert self.handle.app.keeper is not None
        return self.handle.app.keeper

    async def advance(self, seconds: float) -> None:
        """Zoho's (and so the keeper's) clock moves; the keeper does what is due."""
        if seconds:
            await self.sandbox.advance_clock(seconds)
        await self.keeper.settle()

    async def keeper_row(self, subscription_id: str) -> Any:
        async with self.handle.app.live.engine.connect() as conn:
            return (
                await conn.execute(
                    select(KeeperSubscription).where(
                        KeeperSubscription.subscription_id == subscription_id
                    )
                )
            ).first()

    async def row(self, subscription_id: str) -> Any:
        async with self.handle.app.live.engine.connect() as conn:
            query = select(SubscriptionRow).where(SubscriptionRow.id == subscription_id)
            return (await conn.execute(query)).first()


@asynccontextmanager
async def kept_notifier(
    sandbox: Any, broker: Any, database_url: str, **keeper: Any
) -> AsyncIterator[Kept]:
    """A notifier with its keeper, started and stopped the way every fixture starts a
    service (servicekit.runner.running)."""
    app = NotifierApp(
        notifier_config(
            sandbox.origin, broker.address, database_url,
            keeper=keeper_config(sandbox.origin, **keeper),
        ),
        transport=SpyTransport(),
    )
    async with running(app, grace=0, migrate=False) as address:
        channel = grpc.aio.insecure_channel(address)
        stub = notifier_pb2_grpc.NotifierServiceStub(channel)
        handle = NotifierHandle(app, address, channel, stub, app.http._transport)  # type: ignore[arg-type]
        try:
            yield Kept(handle, sandbox)
        finally:
            await channel.close()


@pytest.fixture
async def kept(sandbox, broker, notifier_database_url) -> AsyncIterator[Kept]:
    async with kept_notifier(sandbox, broker, notifier_database_url) as notifier:
        yield notifier


async def watch_writes(sandbox: Any, channel_id: str) -> list[Any]:
    """The PUT/PATCH/POST calls Zoho received that named this channel."""
    return [
        c for c in await sandbox.calls("crm.watch")
        if c.method in ("PUT", "PATCH", "POST") and c.channel_ids and channel_id in c.channel_ids
    ]
