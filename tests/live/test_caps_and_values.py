"""A user's cap on subscriptions (each costs the org's Zoho quota), and numbers JSON
cannot carry (NaN, Infinity, 1e999) in a verified callback.

Asserted: creates past NOTIFIER_MAX_SUBSCRIPTIONS_PER_USER, even racing, are
RESOURCE_EXHAUSTED / TOO_MANY_SUBSCRIPTIONS with an ErrorInfo naming the limit, and never
reach Zoho; a callback's non-finite numbers reach watchers as proto3's JSON strings
("NaN", "Infinity", "-Infinity"), so the stored event can be streamed and replayed."""

from __future__ import annotations

import asyncio
import json

import grpc

from tests.live.helpers import CRM, Watcher, crm_subscription
from tests.plugins.zoho_callbacks import crm_body
from tests.rpc_errors import error_info
from zoho.notifier.v1 import notifier_pb2


async def test_creates_past_the_per_user_cap_are_refused_before_zoho(
    notifier, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    await connect_subscriber("other")
    notifier.app.subscriptions._max_per_user = 3
    before = len(await sandbox.crm_channels("demo"))

    async def create(user: str) -> notifier_pb2.Subscription | grpc.aio.AioRpcError:
        try:
            return await notifier.stub.CreateSubscription(
                notifier_pb2.CreateSubscriptionRequest(
                    user_id=user, app_type=CRM, events=["Leads.all"]), timeout=20)
        except grpc.aio.AioRpcError as refused:
            return refused

    results = await asyncio.gather(*(create("demo") for _ in range(8)))
    made = [r for r in results if isinstance(r, notifier_pb2.Subscription)]
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert 1 <= len(made) <= 3 and len(made) + len(refused) == 8
    for err in refused:
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
        info = error_info(err)
        assert info.reason == "TOO_MANY_SUBSCRIPTIONS" and info.metadata["limit"] == "3"
    # Refused ones asked nothing of Zoho and left no row.
    assert len(await sandbox.crm_channels("demo")) == before + len(made)
    listed = await notifier.stub.ListSubscriptions(
        notifier_pb2.ListSubscriptionsRequest(user_id="demo"))
    assert len(listed.subscriptions) == len(made)
    while len(made) < 3:
        made.append(await create("demo"))  # type: ignore[arg-type]
    assert isinstance(await create("demo"), grpc.aio.AioRpcError)
    # The cap is per user; deleting one makes room again.
    assert isinstance(await create("other"), notifier_pb2.Subscription)
    await notifier.stub.DeleteSubscription(notifier_pb2.DeleteSubscriptionRequest(
        user_id="demo", subscription_id=made[0].subscription_id))
    assert isinstance(await create("demo"), notifier_pb2.Subscription)


async def test_non_finite_numbers_in_a_callback_are_streamed_as_their_json_strings(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    watcher = Watcher(notifier.stub, from_earliest=True)
    body = crm_body(channel, ["7"], affected_values=[
        {"record_id": "7", "values": {"a": "@NAN@", "b": "@INF@", "c": "@NINF@", "d": "@BIG@",
                                      "nested": {"list": [1.5, "@NAN@"]}}}])
    raw = (json.dumps(body).replace('"@NAN@"', "NaN").replace('"@INF@"', "Infinity")
           .replace('"@NINF@"', "-Infinity").replace('"@BIG@"', "-1e999"))
    answer = await callbacks.http.post(
        channel["notify_url"], content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    [event] = await watcher.wait_for(1)
    await watcher.stop()
    values = dict(event.values)
    assert values["a"] == "NaN" and values["b"] == "Infinity"
    assert values["c"] == "-Infinity" and values["d"] == "-Infinity"
    assert list(event.values["nested"]["list"]) == [1.5, "NaN"]
    # Replayed from the database as well: the stored bytes parse and carry the same.
    again = Watcher(notifier.stub, from_earliest=True)
    [replayed] = await again.wait_for(1)
    await again.stop()
    assert replayed.values == event.values
