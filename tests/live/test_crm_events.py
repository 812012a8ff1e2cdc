"""CRM callbacks through the real ingress to WatchNotifications: the right user only,
401 for anything unverified, each event once, resume with a cursor."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from tests.live.helpers import CRM, Watcher, crm_subscription
from tests.plugins.zoho_callbacks import crm_body
from tests.rpc_errors import bad_fields, reason
from zoho.notifier.v1 import notifier_pb2


@pytest.mark.slow
async def test_a_crm_delivery_reaches_its_users_watchers_only(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber("demo")
    await connect_subscriber("other")
    mine, channel = await crm_subscription(notifier, sandbox, "demo")
    theirs, their_channel = await crm_subscription(notifier, sandbox, "other")
    assert channel["notify_url"].startswith("http://127.0.0.1:")
    assert len(channel["token"]) <= 50
    demo = Watcher(notifier.stub, user_id="demo")
    other = Watcher(notifier.stub, user_id="other")
    everyone = Watcher(notifier.stub)
    for watcher in (demo, other, everyone):
        await watcher.started()
    body = crm_body(channel, ["111", "222"], operation="update",
                    affected_fields=["Company"],
                    affected_values=[{"record_id": "111", "values": {"Company": "Zylker"}}])
    answer = await callbacks.crm(channel["notify_url"], body)
    assert answer.status_code == 200
    assert (await callbacks.crm(their_channel["notify_url"], crm_body(their_channel, ["9"]))
            ).status_code == 200
    events = await demo.wait_for(2)
    assert [(e.record_id, e.operation, e.module) for e in events] == [
        ("111", "edit", "Leads"), ("222", "edit", "Leads")]
    assert events[0].subscription_id == mine.subscription_id and events[0].app_type == CRM
    assert list(events[0].affected_fields) == ["Company"]
    assert events[0].values["Company"] == "Zylker"
    assert events[0].event_time.ToMilliseconds() == body["server_time"]
    assert events[0].cursor < events[1].cursor
    assert [e.record_id for e in await other.wait_for(1)] == ["9"]
    assert (await other.wait_for(1))[0].subscription_id == theirs.subscription_id
    assert len(await everyone.wait_for(3)) == 3
    assert len(demo.events) == 2 and len(other.events) == 1
    for watcher in (demo, other, everyone):
        await watcher.stop()


@pytest.mark.slow
@pytest.mark.parametrize("forgery", ["token", "channel", "subscription"])
async def test_an_unverified_delivery_is_401_stores_nothing_and_is_counted(
    notifier, sandbox, connect_subscriber, callbacks, forgery
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    watcher = Watcher(notifier.stub, from_earliest=True)
    await watcher.started()
    body = crm_body(channel, ["1"])
    url = channel["notify_url"]
    if forgery == "token":
        body["token"] = channel["token"][:-1] + ("A" if channel["token"][-1] != "A" else "B")
    elif forgery == "channel":
        body["channel_id"] = "1" + channel["channel_id"]
    else:
        url = url.rsplit("/", 1)[0] + "/sub_" + "0" * 24
    answer = await callbacks.crm(url, body)
    assert answer.status_code == 401
    assert channel["token"] not in answer.text
    assert notifier.app.live.ingress.counts[("crm", "unverified")] == 1
    # A good delivery after it is the first event anyone sees.
    assert (await callbacks.crm(channel["notify_url"], crm_body(channel, ["2"]))).status_code == 200
    assert [e.record_id for e in await watcher.wait_for(1)] == ["2"]
    await watcher.stop()


@pytest.mark.slow
async def test_a_repeated_delivery_is_stored_once(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    body = crm_body(channel, ["7", "8"])
    for _ in range(3):
        assert (await callbacks.crm(channel["notify_url"], body)).status_code == 200
    later = crm_body(channel, ["7"], operation="update")
    assert (await callbacks.crm(channel["notify_url"], later)).status_code == 200
    watcher = Watcher(notifier.stub, from_earliest=True)
    events = await watcher.wait_for(3)
    await watcher.stop()
    assert [(e.record_id, e.operation) for e in events] == [
        ("7", "create"), ("8", "create"), ("7", "edit")]


@pytest.mark.slow
async def test_a_resumed_watch_misses_nothing_and_repeats_nothing(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    first = Watcher(notifier.stub, user_id="demo")
    await first.started()
    for i in range(5):
        await callbacks.crm(channel["notify_url"], crm_body(channel, [str(i)]))
    seen = await first.wait_for(5)
    await first.stop()  # the watcher dies after the third
    last = seen[2].cursor
    for i in range(5, 8):  # while nobody watches
        await callbacks.crm(channel["notify_url"], crm_body(channel, [str(i)]))
    again = Watcher(notifier.stub, user_id="demo", after_cursor=last)
    await again.started()
    await callbacks.crm(channel["notify_url"], crm_body(channel, ["8"]))  # live, after resuming
    events = await again.wait_for(6)
    await again.stop()
    assert [e.record_id for e in events] == [str(i) for i in range(3, 9)]
    assert len({e.cursor for e in events}) == 6


@pytest.mark.slow
async def test_bad_bodies_are_400_and_cursors_are_checked(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    assert (await callbacks.raw(channel["notify_url"], b"{not json")).status_code == 400
    no_ids = crm_body(channel, [])
    assert (await callbacks.crm(channel["notify_url"], no_ids)).status_code == 400
    big = b'{"ids": ["' + b"1" * (2 << 20) + b'"]}'
    assert (await callbacks.raw(channel["notify_url"], big)).status_code == 413
    for bad in ("nonsense", "0" * 15):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in notifier.stub.WatchNotifications(
                notifier_pb2.WatchNotificationsRequest(after_cursor=bad), timeout=5
            ):
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert bad_fields(caught.value) == {"after_cursor"}
    assert reason(caught.value) == "INVALID_ARGUMENT"


@pytest.mark.slow
async def test_a_slow_sender_is_cut_off_and_an_idle_watch_stays_open(
    notifier, sandbox, connect_subscriber, callbacks
) -> None:
    await connect_subscriber()
    _, channel = await crm_subscription(notifier, sandbox)
    watcher = Watcher(notifier.stub, user_id="demo")
    await watcher.started()
    notifier.app.live.ingress._read_timeout = 0.3
    host, port = notifier.app.live.ingress_address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = channel["notify_url"].split(port, 1)[1]
    writer.write(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: 1000\r\n\r\n{{\"ids\": [".encode())
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert b" 408 " in status
    await asyncio.sleep(1.5)  # idle: the watch is neither ended nor stalled
    assert (await callbacks.crm(channel["notify_url"], crm_body(channel, ["1"]))).status_code == 200
    assert [e.record_id for e in await watcher.wait_for(1)] == ["1"]
    await watcher.stop()
