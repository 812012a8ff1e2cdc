"""Creating subscriptions and reading what Zoho was told, for the live-events tests."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from tests.plugins.zoho_callbacks import crm_channel
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

CRM = common_pb2.APP_TYPE_CRM
DESK = common_pb2.APP_TYPE_DESK


async def crm_subscription(
    notifier: Any, sandbox: Any, user: str = "demo", events: tuple[str, ...] = ("Leads.all",)
) -> tuple[notifier_pb2.Subscription, dict[str, Any]]:
    """A CRM subscription and its channel as Zoho holds it (notify_url, token)."""
    sub = await notifier.stub.CreateSubscription(
        notifier_pb2.CreateSubscriptionRequest(user_id=user, app_type=CRM, events=list(events)),
        timeout=10,
    )
    return sub, await crm_channel(sandbox, sub.zoho_id, user)


async def desk_subscription(
    notifier: Any,
    sandbox: Any,
    user: str = "demo",
    events: tuple[str, ...] = ("Ticket_Add", "Ticket_Update"),
) -> tuple[notifier_pb2.Subscription, str]:
    """A Desk subscription and its webhook's url as Desk holds it (the notifier shows
    it with the path secret masked: only Desk's own copy carries it)."""
    sub = await notifier.stub.CreateSubscription(
        notifier_pb2.CreateSubscriptionRequest(user_id=user, app_type=DESK, events=list(events)),
        timeout=10,
    )
    urls = [hook["url"] for hook in await sandbox.desk_webhooks(user) if hook["id"] == sub.zoho_id]
    assert urls, "Desk has no webhook for the subscription"
    return sub, urls[0]


class Watcher:
    """A WatchNotifications stream read in the background into `events`."""

    def __init__(self, stub: Any, **request: Any) -> None:
        self.call = stub.WatchNotifications(notifier_pb2.WatchNotificationsRequest(**request))
        self.events: list[notifier_pb2.NotificationEvent] = []
        self.error: grpc.aio.AioRpcError | None = None
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.call:
                self.events.append(event)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.error = error

    async def wait_for(
        self, count: int, limit: float = 10.0
    ) -> list[notifier_pb2.NotificationEvent]:
        async with asyncio.timeout(limit):
            while len(self.events) < count and self.error is None:
                await asyncio.sleep(0.01)
        if self.error is not None:
            raise self.error
        return self.events

    async def started(self) -> None:
        """Once the server has set the stream's start point (headers are sent first)."""
        await self.call.initial_metadata()

    async def stop(self) -> None:
        self.call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
