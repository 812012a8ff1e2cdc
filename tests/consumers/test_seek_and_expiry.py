"""SeekConsumer (earliest, a time, after a cursor) and retention pruning events a
consumer had not acknowledged (expired_count)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from notifier.events.retention import Pruner
from tests.consumers.helpers import Puller, append, create, get, until
from tests.rpc_errors import bad_fields
from zoho.notifier.v1 import notifier_pb2


async def _drain(notifier, count: int) -> list[notifier_pb2.NotificationEvent]:  # type: ignore[no-untyped-def]
    pull = Puller(notifier.stub, "sync")
    got = [e for e, _ in await pull.wait_for(count)]
    await pull.ack(*[e.cursor for e in got])
    await pull.close()
    return got


async def test_seek_delivers_again_what_follows(notifier) -> None:
    await append(notifier, "1", "2", "3")
    await create(notifier.stub)
    first = await _drain(notifier, 3)
    await until(lambda: _backlog_is(notifier, 0))
    sought = await notifier.stub.SeekConsumer(
        notifier_pb2.SeekConsumerRequest(consumer_id="sync", from_earliest=True))
    assert sought.backlog == 3 and sought.acked_until == ""
    again = await _drain(notifier, 3)
    assert [e.cursor for e in again] == [e.cursor for e in first]
    await notifier.stub.SeekConsumer(
        notifier_pb2.SeekConsumerRequest(consumer_id="sync", after_cursor=first[0].cursor))
    assert [e.record_id for e in await _drain(notifier, 2)] == ["2", "3"]


async def test_seek_to_a_time(notifier) -> None:
    await append(notifier, "old")
    await asyncio.sleep(0.05)
    middle = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await append(notifier, "new")
    await create(notifier.stub)
    stamp = Timestamp()
    stamp.FromDatetime(middle)
    sought = await notifier.stub.SeekConsumer(
        notifier_pb2.SeekConsumerRequest(consumer_id="sync", start_time=stamp))
    assert sought.backlog == 1
    assert [e.record_id for e in await _drain(notifier, 1)] == ["new"]


async def test_seek_errors(notifier) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await notifier.stub.SeekConsumer(
            notifier_pb2.SeekConsumerRequest(consumer_id="nobody", from_earliest=True))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    await create(notifier.stub)
    with pytest.raises(grpc.aio.AioRpcError) as aimless:
        await notifier.stub.SeekConsumer(notifier_pb2.SeekConsumerRequest(consumer_id="sync"))
    assert bad_fields(aimless.value) == {"target"}


async def test_a_seek_ignores_acks_of_deliveries_made_before_it(notifier) -> None:
    await append(notifier, "1")
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync")
    (event, _), = await pull.wait_for(1)
    await notifier.stub.SeekConsumer(
        notifier_pb2.SeekConsumerRequest(consumer_id="sync", from_earliest=True))
    await pull.ack(event.cursor)  # of the delivery before the seek
    await asyncio.sleep(0.3)
    assert (await get(notifier.stub)).backlog == 1
    await pull.stop()


async def test_retention_counts_what_a_consumer_had_not_acknowledged(notifier) -> None:
    await append(notifier, "1", "2", "3", "4")
    await create(notifier.stub, "lagging")
    await create(notifier.stub, "sync")
    pull = Puller(notifier.stub, "sync", max_outstanding=2)
    got = await pull.wait_for(2)
    await pull.ack(got[0][0].cursor)
    await until(lambda: _backlog_is(notifier, 3))
    await pull.stop()
    pruner = Pruner(
        notifier.app.live.log, 1.0, interval_seconds=60,
        clock=lambda: datetime.now(UTC) + timedelta(hours=1),
        before_delete=notifier.app.live.consumers.expire,
    )
    assert await pruner.prune_once() == 4
    synced = await get(notifier.stub, "sync")
    assert (synced.expired_count, synced.backlog) == (3, 0)
    lagging = await get(notifier.stub, "lagging")
    assert (lagging.expired_count, lagging.backlog) == (4, 0)
    await append(notifier, "5")
    assert [e.record_id for e in await _drain(notifier, 1)] == ["5"]
    assert (await get(notifier.stub, "sync")).expired_count == 3


async def _backlog_is(notifier, count: int) -> bool:  # type: ignore[no-untyped-def]
    return (await get(notifier.stub)).backlog == count
