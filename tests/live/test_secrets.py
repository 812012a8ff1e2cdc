"""Verification secrets (CRM channel tokens, Desk path secrets) are never at rest in
plaintext, nor in a log, a stream, an error or an answer."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from tests.live.helpers import Watcher, crm_subscription, desk_subscription
from tests.plugins import broker_fixtures
from tests.plugins.zoho_callbacks import crm_body, desk_event
from zoho.notifier.v1 import notifier_pb2


@pytest.mark.slow
async def test_secrets_are_in_no_log_stream_error_or_database_file(
    notifier, sandbox, connect_subscriber, callbacks, notifier_database_url, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    await connect_subscriber()
    crm, channel = await crm_subscription(notifier, sandbox)
    desk, url = await desk_subscription(notifier, sandbox)
    secrets = [channel["token"], url.rsplit("/", 1)[1]]
    assert all(len(s) >= 40 for s in secrets)
    watcher = Watcher(notifier.stub, from_earliest=True)
    await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))
    await callbacks.desk(url, [desk_event("Ticket_Add", "2")])
    bad = await callbacks.crm(channel["notify_url"], {**crm_body(channel, ["3"]), "ids": "x"})
    assert bad.status_code == 400
    events = await watcher.wait_for(2)
    await watcher.stop()
    shown = [str(e) for e in events]
    shown.append(str(await notifier.stub.GetSubscription(notifier_pb2.GetSubscriptionRequest(
        user_id="demo", subscription_id=crm.subscription_id))))
    shown.append(str(await notifier.stub.ListSubscriptions(
        notifier_pb2.ListSubscriptionsRequest(user_id="demo"))))
    shown.append(bad.text)
    forged = await callbacks.crm(channel["notify_url"], {**crm_body(channel, ["4"]), "token": "x"})
    assert forged.status_code == 401
    shown.append(forged.text)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await notifier.stub.DeleteSubscription(notifier_pb2.DeleteSubscriptionRequest(
            user_id="other", subscription_id=desk.subscription_id))
    shown.append(str(caught.value.details()) + str(caught.value.trailing_metadata()))
    # The test's own client plays Zoho: its request lines to the ingress are Zoho's, not ours.
    ours = [r for r in caplog.records
            if not (r.name == "httpx" and "/callbacks/" in r.getMessage())]
    shown.extend(r.getMessage() for r in ours)
    for secret in secrets:
        assert not [text for text in shown if secret in text]
    if broker_fixtures.test_database_kind() == "sqlite":
        database = Path(notifier_database_url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        for secret in secrets:
            assert secret.encode() not in raw
