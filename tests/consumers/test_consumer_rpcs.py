"""CreateConsumer, GetConsumer, ListConsumers, DeleteConsumer against the real notifier:
what is stored, and every bad input's error as a caller sees it."""

from __future__ import annotations

import grpc
import pytest

from notifier.app import NotifierApp
from notifier.consumers.config import ConsumersConfig
from servicekit.runner import running
from tests.consumers.helpers import SUB, append, create, get
from tests.plugins.notifier_fixtures import events_config, notifier_config
from tests.rpc_errors import bad_fields, error_info, reason
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc


async def test_a_consumer_is_stored_with_its_filters_and_defaults(notifier) -> None:
    made = await create(notifier.stub, "crm-sync", user_id="demo",
                        app_type=common_pb2.APP_TYPE_CRM, subscription_id=SUB)
    assert made.consumer_id == "crm-sync" and made.user_id == "demo"
    assert made.app_type == common_pb2.APP_TYPE_CRM and made.subscription_id == SUB
    assert made.ack_deadline_seconds == 60
    assert made.acked_until == "" and made.backlog == 0 and made.expired_count == 0
    assert made.created_time.seconds > 0
    assert not made.HasField("oldest_unacked_time")
    assert await get(notifier.stub, "crm-sync") == made


async def test_backlog_counts_matching_events_from_the_start(notifier) -> None:
    await append(notifier, "1", "2")
    await append(notifier, "3", user="other")
    await create(notifier.stub, "everyone")
    await create(notifier.stub, "demo-only", user_id="demo")
    await create(notifier.stub, "from-now", from_earliest=False)
    await append(notifier, "4")
    assert (await get(notifier.stub, "everyone")).backlog == 4
    assert (await get(notifier.stub, "demo-only")).backlog == 3
    assert (await get(notifier.stub, "from-now")).backlog == 1
    demo = await get(notifier.stub, "demo-only")
    assert demo.HasField("oldest_unacked_time")


async def test_list_pages_and_delete(notifier) -> None:
    for name in ("ccc", "aaa", "bbb"):
        await create(notifier.stub, name)
    first = await notifier.stub.ListConsumers(notifier_pb2.ListConsumersRequest(page_size=2))
    assert [c.consumer_id for c in first.consumers] == ["aaa", "bbb"]
    rest = await notifier.stub.ListConsumers(
        notifier_pb2.ListConsumersRequest(page_size=2, page_token=first.next_page_token))
    assert [c.consumer_id for c in rest.consumers] == ["ccc"] and rest.next_page_token == ""
    await notifier.stub.DeleteConsumer(notifier_pb2.DeleteConsumerRequest(consumer_id="bbb"))
    listed = await notifier.stub.ListConsumers(notifier_pb2.ListConsumersRequest())
    assert [c.consumer_id for c in listed.consumers] == ["aaa", "ccc"]


async def test_unknown_and_taken_names(notifier) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await get(notifier.stub, "nobody")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason(unknown.value) == "NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await notifier.stub.DeleteConsumer(notifier_pb2.DeleteConsumerRequest(consumer_id="nobody"))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    await create(notifier.stub, "taken")
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await create(notifier.stub, "taken")
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert reason(taken.value) == "ALREADY_EXISTS"
    assert error_info(taken.value).metadata["consumer_id"] == "taken"


@pytest.mark.parametrize(("fields", "bad"), [
    ({"consumer_id": "Sync"}, "consumer_id"),
    ({"consumer_id": "ab"}, "consumer_id"),
    ({"consumer_id": "x" * 64}, "consumer_id"),
    ({"consumer_id": "sync", "ack_deadline_seconds": 9}, "ack_deadline_seconds"),
    ({"consumer_id": "sync", "ack_deadline_seconds": 601}, "ack_deadline_seconds"),
    ({"consumer_id": "sync", "after_cursor": "nope"}, "after_cursor"),
    ({"consumer_id": "sync", "subscription_id": "sub_x"}, "subscription_id"),
    ({"consumer_id": "sync", "app_type": 7}, "app_type"),
])
async def test_bad_create_requests_name_the_field(notifier, fields, bad) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await notifier.stub.CreateConsumer(notifier_pb2.CreateConsumerRequest(**fields))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(failed.value) == {bad}
    with pytest.raises(grpc.aio.AioRpcError):
        await get(notifier.stub, "sync")


async def test_a_cursor_older_than_the_retention_is_cursor_expired(notifier) -> None:
    await append(notifier, "1", "2")
    await notifier.app.live.log.prune(_far_future())
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await create(notifier.stub, "late", after_cursor="0000000000000001")
    assert failed.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert reason(failed.value) == "CURSOR_EXPIRED"


def _far_future():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(days=1)


async def test_the_cap_is_resource_exhausted_and_consumers_survive_a_restart(
    sandbox, broker, notifier_database_url
) -> None:
    config = notifier_config(
        sandbox.origin, broker.address, notifier_database_url,
        events=events_config(notifier_database_url, consumers=ConsumersConfig(max_consumers=2)),
    )
    async with running(NotifierApp(config), grace=0, migrate=False) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            await create(stub, "one", ack_deadline_seconds=30)
            await create(stub, "two")
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await create(stub, "three")
            assert failed.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason(failed.value) == "TOO_MANY_CONSUMERS"
            assert error_info(failed.value).metadata["limit"] == "2"
    async with running(NotifierApp(config), grace=0, migrate=False) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            assert (await get(stub, "one")).ack_deadline_seconds == 30
            listed = await stub.ListConsumers(notifier_pb2.ListConsumersRequest())
            assert [c.consumer_id for c in listed.consumers] == ["one", "two"]


async def test_backlog_and_oldest_unacked_age_are_gauges(notifier) -> None:
    from notifier.consumers import metrics

    await append(notifier, "1", "2", "3")
    await create(notifier.stub, "gauged")
    await create(notifier.stub, "gone")
    consumers = notifier.app.live.consumers
    await consumers.refresh_gauges()
    assert metrics.BACKLOG.labels("gauged")._value.get() == 3
    assert metrics.OLDEST_UNACKED_AGE.labels("gauged")._value.get() >= 0.0
    await notifier.stub.DeleteConsumer(notifier_pb2.DeleteConsumerRequest(consumer_id="gone"))
    await consumers.refresh_gauges()
    labelled = {s.labels.get("consumer") for s in metrics.BACKLOG.collect()[0].samples}
    assert "gone" not in labelled and "gauged" in labelled
