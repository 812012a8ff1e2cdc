"""Secrets the notifier minted (CRM channel tokens, Desk webhook path secrets) in no byte
of anything it answers: every RPC that returns data (lists, pages, the webhook writes
on the notifier's own webhook, subscriptions, every watched event including gaps),
every error's details and trailing metadata, and every log line.

Read as raw bytes off the wire (no deserializer), so a field added later that carries a
secret is caught too. The Desk webhook's URL is shown with its secret masked."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import grpc

from notifier.keeper.gaps import gap_event
from tests.live.helpers import CRM, DESK, Watcher, crm_subscription, desk_subscription
from tests.plugins.zoho_callbacks import crm_body, desk_event
from zoho.notifier.v1 import notifier_pb2 as pb

SERVICE = "/zoho.notifier.v1.NotifierService/"


async def _stream(channel: grpc.aio.Channel, method: str, request: Any) -> list[bytes]:
    call = channel.unary_stream(
        SERVICE + method, request_serializer=type(request).SerializeToString)
    return [raw async for raw in call(request, timeout=10)]


async def _unary(channel: grpc.aio.Channel, method: str, request: Any) -> bytes:
    call = channel.unary_unary(
        SERVICE + method, request_serializer=type(request).SerializeToString)
    try:
        raw: bytes = await call(request, timeout=10)
    except grpc.aio.AioRpcError as refused:
        # The refusal is what the caller gets: its text and every trailer, as bytes.
        return (str(refused.details()) + repr(refused.trailing_metadata())).encode()
    return raw


async def test_no_minted_secret_is_in_any_answer_event_error_or_log(
    notifier, sandbox, connect_subscriber, callbacks, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    await connect_subscriber()
    crm, channel = await crm_subscription(notifier, sandbox)
    desk, url = await desk_subscription(notifier, sandbox)
    secrets = [channel["token"].encode(), url.rsplit("/", 1)[1].encode()]
    watcher = Watcher(notifier.stub, from_earliest=True)
    await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))
    await callbacks.desk(url, [desk_event("Ticket_Add", "2")])
    # A gap (the keeper's and the outage notice) carries the subscription as well.
    now = datetime.now(UTC)
    row = SimpleNamespace(id=desk.subscription_id, user_id="demo", app_type=DESK)
    await notifier.app.live.writer.append([gap_event(row, now, now)])
    await watcher.wait_for(3)
    await watcher.stop()

    wire = notifier.channel
    seen: list[bytes] = []
    for app in (CRM, DESK):
        seen += await _stream(wire, "ListNotifications",
                              pb.ListNotificationsRequest(user_id="demo", app_type=app))
        seen += await _stream(wire, "ListNotificationPages",
                              pb.ListNotificationPagesRequest(user_id="demo", app_type=app))
    seen.append(await _unary(wire, "UpdateDeskWebhook", pb.UpdateDeskWebhookRequest(
        user_id="demo", webhook_id=desk.zoho_id, webhook=pb.DeskWebhookSpec(name="Renamed"),
        update_fields=["name"])))
    for sub in (crm, desk):
        seen.append(await _unary(wire, "GetSubscription", pb.GetSubscriptionRequest(
            user_id="demo", subscription_id=sub.subscription_id)))
        seen.append(await _unary(wire, "DeleteSubscription", pb.DeleteSubscriptionRequest(
            user_id="someone-else", subscription_id=sub.subscription_id)))
    seen.append(await _unary(wire, "ListSubscriptions", pb.ListSubscriptionsRequest(
        user_id="demo")))
    seen += [event.SerializeToString() for event in watcher.events]
    seen += [crm.SerializeToString(), desk.SerializeToString()]
    # The test's own client plays Zoho: its request lines to the ingress are Zoho's.
    seen += [r.getMessage().encode() for r in caplog.records
             if not (r.name == "httpx" and "/callbacks/" in r.getMessage())]
    for secret in secrets:
        assert not [raw for raw in seen if secret in raw], "a minted secret was answered"

    # The webhook is still shown, with the secret masked (by shape: any host).
    listed = [pb.Notification.FromString(raw) for raw in await _stream(
        wire, "ListNotifications", pb.ListNotificationsRequest(user_id="demo", app_type=DESK))]
    [ours] = [item.desk for item in listed if item.desk.id == desk.zoho_id]
    assert ours.url == url.rsplit("/", 1)[0] + "/[redacted]"
