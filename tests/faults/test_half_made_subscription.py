"""A notifier killed (SIGKILL) in the middle of CreateSubscription, with Zoho holding
the request: the row is `pending`, and a channel or webhook may be live at Zoho.

Injected: sandbox faults that hang Zoho's answer to the create, after the channel
(CRM) or webhook (Desk) was made, or before anything was (a second CRM create); then
kill -9, and a new notifier on the same database.
Asserted: meanwhile, a delivery to the half-made channel is refused (409) and reaches
no watcher; the new notifier's keeper leaves rows younger than 60 s alone (a create may
still be in flight), then finishes those Zoho holds as asked (listed ACTIVE, a gap over
the refused time, deliveries stored again) and removes the one Zoho never made."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from typing import Any

import grpc
import pytest
from sqlalchemy import create_engine, text

from notifier.database import DATABASE
from tests.integration.stack import free_port
from tests.live.helpers import CRM, DESK, Watcher
from tests.plugins.broker_fixtures import TEST_KEY
from tests.plugins.processes import ServiceProcess
from tests.plugins.zoho_callbacks import crm_body, desk_event
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

pytestmark = pytest.mark.faults


class _Handle:
    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = notifier_pb2_grpc.NotifierServiceStub(self.channel)


def _env(sandbox: Any, broker: Any, database_url: str, ingress: str) -> dict[str, str]:
    return {
        "NOTIFIER_LISTEN": "127.0.0.1:0",
        "NOTIFIER_BROKER_TARGET": broker.address,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin,
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
        # The same public URL for both processes: the channels point at it.
        "NOTIFIER_INGRESS_LISTEN": ingress,
        "NOTIFIER_KEEPER_CLOCK_URL": sandbox.origin + "/_sandbox/clock",
        "NOTIFIER_KEEPER_TICK_SECONDS": "0.2",
    }


def _statuses(database_url: str) -> dict[str, str]:
    engine = create_engine(DATABASE.sync_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status FROM notifier_subscriptions")).all()
    engine.dispose()
    return {row.id: row.status for row in rows}


async def _until(condition: Any, limit: float = 20.0) -> None:
    async with asyncio.timeout(limit):
        while not await condition():
            await asyncio.sleep(0.1)


async def test_a_create_killed_midway_is_refused_then_finished_or_removed_by_the_keeper(
    sandbox, broker, connect_subscriber, callbacks, notifier_database_url
) -> None:
    await connect_subscriber()
    env = _env(sandbox, broker, notifier_database_url, f"127.0.0.1:{free_port()}")
    first = await asyncio.to_thread(ServiceProcess, "notifier", env)
    handle = _Handle(first.address)
    creates: list[asyncio.Task[Any]] = []

    def create(app: int, events: list[str]) -> None:
        creates.append(asyncio.ensure_future(handle.stub.CreateSubscription(
            notifier_pb2.CreateSubscriptionRequest(user_id="demo", app_type=app, events=events),
            timeout=60)))

    async def ours_at_crm() -> list[dict[str, Any]]:
        return [c for c in await sandbox.crm_channels() if "/callbacks/crm/sub_" in
                (c.get("notify_url") or "")]

    async def ours_at_desk() -> list[dict[str, Any]]:
        return [h for h in await sandbox.desk_webhooks() if "/callbacks/desk/sub_" in h["url"]]

    try:
        # A: Zoho makes the channel, then never answers.
        await sandbox.fault("crm.watch", "hang", when="after")
        create(CRM, ["Leads.all"])
        await _until(lambda: _truthy(ours_at_crm()))
        [channel] = await ours_at_crm()
        # C: Zoho never gets as far as making it.
        calls = len(await sandbox.calls("crm.watch"))
        await sandbox.fault("crm.watch", "hang", when="before")
        create(CRM, ["Deals.all"])
        await _until(lambda: _more(sandbox.calls("crm.watch"), calls))
        # B: Desk checks the URL (answered: the row is known), makes the webhook, hangs.
        await sandbox.fault("desk.webhooks", "hang", when="after")
        create(DESK, ["Ticket_Add"])
        await _until(lambda: _truthy(ours_at_desk()))
        [webhook] = await ours_at_desk()
        assert len(_statuses(notifier_database_url)) == 3

        watcher = Watcher(handle.stub, from_earliest=True)
        await watcher.started()
        refused = await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))
        assert refused.status_code == 409
        refused = await callbacks.desk(webhook["url"], [desk_event("Ticket_Add", "2")])
        assert refused.status_code == 409
        await asyncio.sleep(0.3)
        assert watcher.events == []
        await watcher.stop()
        os.kill(first.pid, signal.SIGKILL)
        await asyncio.to_thread(first.proc.wait, 10)
    finally:
        for task in creates:
            task.cancel()
        await asyncio.gather(*creates, return_exceptions=True)
        await handle.channel.close()
        first.kill()
    await sandbox.clear_faults()
    assert set(_statuses(notifier_database_url).values()) == {"pending"}

    second = await asyncio.to_thread(ServiceProcess, "notifier", env)
    handle = _Handle(second.address)
    try:
        # Younger than 60 s: a create might still be running somewhere; left alone.
        await asyncio.sleep(1.0)
        assert set(_statuses(notifier_database_url).values()) == {"pending"}
        watcher = Watcher(handle.stub, from_earliest=True)
        await watcher.started()
        await sandbox.advance_clock(61)

        async def settled() -> bool:
            return "pending" not in _statuses(notifier_database_url).values()

        await _until(settled)
        listed = await handle.stub.ListSubscriptions(
            notifier_pb2.ListSubscriptionsRequest(user_id="demo"))
        shown = {s.zoho_id: s for s in listed.subscriptions}
        assert set(shown) == {channel["channel_id"], webhook["id"]}
        assert all(s.status == notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE for s in shown.values())
        assert sorted(_statuses(notifier_database_url).values()) == [
            "active", "active", "deleted"]
        # Watchers hear that deliveries were refused, then get them again.
        gaps = await watcher.wait_for(2)
        assert {g.operation for g in gaps} == {"gap"}
        assert {g.subscription_id for g in gaps} == {s.subscription_id for s in shown.values()}
        assert (await callbacks.crm(channel["notify_url"], crm_body(channel, ["3"]))
                ).status_code == 200
        assert (await callbacks.desk(webhook["url"], [desk_event("Ticket_Add", "4")])
                ).status_code == 200
        events = await watcher.wait_for(4)
        assert sorted(e.record_id for e in events if e.operation != "gap") == ["3", "4"]
        await watcher.stop()
    finally:
        await handle.channel.close()
        with contextlib.suppress(Exception):
            second.terminate()


async def _truthy(pending: Any) -> bool:
    return bool(await pending)


async def _more(pending: Any, than: int) -> bool:
    return len(await pending) > than
