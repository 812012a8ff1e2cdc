"""Pull against the real notifier: backlog then live events, acks and nacks on the
stream, redelivery, flow control, per-record order, streams sharing one consumer."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import grpc
import pytest

from notifier.consumers import metrics
from notifier.consumers.claims import READ_BATCH
from tests.consumers.helpers import Puller, append, create, get, new_event, until
from tests.rpc_errors import bad_fields, reason


async def test_backlog_then_live_events_acked_on_the_stream(notifier) -> None:
    await append(notifier, "1", "2")
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync")
    got = await pull.wait_for(2)
    assert [(e.record_id, attempts) for e, attempts in got] == [("1", 1), ("2", 1)]
    await append(notifier, "3")
    got = await pull.wait_for(3)
    assert got[2][0].record_id == "3"
    await pull.ack(*[e.cursor for e, _ in got])

    async def all_acked() -> bool:
        consumer = await get(notifier.stub)
        return consumer.backlog == 0 and consumer.acked_until == got[2][0].cursor

    await until(all_acked)
    assert not (await get(notifier.stub)).HasField("oldest_unacked_time")
    await pull.close()
    assert pull.ended and pull.error is None


async def test_max_outstanding_bounds_what_a_stream_holds(notifier) -> None:
    await append(notifier, *[str(i) for i in range(10)])
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync", max_outstanding=3)
    got = await pull.wait_for(3)
    await asyncio.sleep(0.5)
    assert len(pull.received) == 3
    await pull.ack(got[0][0].cursor)
    await pull.wait_for(4)
    await asyncio.sleep(0.3)
    assert pull.records == ["0", "1", "2", "3"]
    consumer = await get(notifier.stub)
    assert consumer.backlog == 9
    await pull.stop()


async def test_a_nacked_event_comes_again_with_its_attempts(notifier) -> None:
    await append(notifier, "1", "2")
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync")
    first, second = [e for e, _ in await pull.wait_for(2)]
    await pull.ack(second.cursor)
    await pull.nack(first.cursor)
    got = await pull.wait_for(3)
    assert (got[2][0].cursor, got[2][1]) == (first.cursor, 2)
    await pull.stop()


async def test_one_record_at_a_time_in_log_order(notifier) -> None:
    await append(notifier, "a", "a", "b", "a", "c")
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync", max_outstanding=10)
    await pull.wait_for(3)
    await asyncio.sleep(0.3)
    assert pull.records == ["a", "b", "c"]
    first_a = pull.received[0][0]
    await pull.ack(first_a.cursor)
    await pull.wait_for(4)
    await asyncio.sleep(0.3)
    assert pull.records == ["a", "b", "c", "a"]
    assert pull.received[3][0].cursor > first_a.cursor
    # The third "a" waits for the second, even after the second is nacked.
    await pull.nack(pull.received[3][0].cursor)
    got = await pull.wait_for(5)
    assert (got[4][0].cursor, got[4][1]) == (pull.received[3][0].cursor, 2)
    await pull.ack(got[4][0].cursor)
    got = await pull.wait_for(6)
    assert got[5][0].record_id == "a" and got[5][0].cursor > got[4][0].cursor
    await pull.stop()


async def test_two_streams_share_the_events_and_acked_until_waits_for_gaps(notifier) -> None:
    records = [str(i) for i in range(20)]
    await append(notifier, *records)
    await create(notifier.stub)
    one = Puller(notifier.stub, "sync", max_outstanding=5)
    two = Puller(notifier.stub, "sync", max_outstanding=5)
    await one.wait_for(5)
    await two.wait_for(5)
    await asyncio.sleep(0.3)
    held_one = {e.cursor for e, _ in one.received}
    held_two = {e.cursor for e, _ in two.received}
    assert len(held_one) == 5 and len(held_two) == 5 and not held_one & held_two
    # Acking all but the lowest cursor leaves acked_until before it.
    lowest = min(held_one | held_two)
    await one.ack(*(held_one - {lowest}))
    await two.ack(*(held_two - {lowest}))
    await one.wait_for(5 + len(held_one - {lowest}))
    consumer = await get(notifier.stub)
    assert consumer.acked_until == "" or consumer.acked_until < lowest
    # Everything gets delivered once across both, and acked.
    while True:
        pending = [e.cursor for p in (one, two) for e, _ in p.received]
        if len(set(pending)) == 20:
            break
        await one.ack(*[e.cursor for e, _ in one.received])
        await two.ack(*[e.cursor for e, _ in two.received])
        await asyncio.sleep(0.05)
    everything = [e for p in (one, two) for e, _ in p.received]
    assert sorted(e.record_id for e in everything) == sorted(records)
    await one.ack(*[e.cursor for e, _ in one.received])
    await two.ack(*[e.cursor for e, _ in two.received])

    async def drained() -> bool:
        return (await get(notifier.stub)).backlog == 0

    await until(drained)
    assert (await get(notifier.stub)).acked_until == max(e.cursor for e in everything)
    await one.stop()
    await two.stop()


@pytest.mark.slow
async def test_an_event_past_its_ack_deadline_goes_to_another_stream(notifier) -> None:
    await append(notifier, "1")
    await create(notifier.stub, ack_deadline_seconds=10)
    opened = time.monotonic()  # the lease is taken after this
    silent = Puller(notifier.stub, "sync")
    (event, _), = await silent.wait_for(1)
    delivered = time.monotonic()  # and before this
    await silent.close()  # its lease stays until the deadline
    other = Puller(notifier.stub, "sync")
    got = await other.wait_for(1, limit=15)
    now = time.monotonic()
    assert got[0][0].cursor == event.cursor and got[0][1] == 2
    assert now - opened >= 10.0, "delivered again before its deadline"
    assert now - delivered <= 11.5, now - delivered
    await other.stop()


async def test_unknown_acks_are_ignored_and_counted(notifier) -> None:
    await append(notifier, "1")
    await create(notifier.stub)
    before = metrics.UNKNOWN_ACKS._value.get()
    pull = Puller(notifier.stub, "sync")
    (event, _), = await pull.wait_for(1)
    await pull.ack("00000000000fffff", event.cursor)
    await until(lambda: _true_when(metrics.UNKNOWN_ACKS._value.get() == before + 1))
    await until(lambda: _backlog_is(notifier, 0))
    await pull.close()
    assert pull.error is None


async def _true_when(value: bool) -> bool:
    return value


async def _backlog_is(notifier, count: int) -> bool:  # type: ignore[no-untyped-def]
    return (await get(notifier.stub)).backlog == count


async def test_pull_errors(notifier) -> None:
    unknown = Puller(notifier.stub, "nobody")
    failed = await unknown.failure()
    assert failed.code() == grpc.StatusCode.NOT_FOUND and reason(failed) == "NOT_FOUND"
    nameless = Puller(notifier.stub, "", max_outstanding=5)
    failed = await nameless.failure()
    assert failed.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_fields(failed) == {"consumer_id"}
    await create(notifier.stub)
    greedy = Puller(notifier.stub, "sync", max_outstanding=1001)
    assert bad_fields(await greedy.failure()) == {"max_outstanding"}
    garbled = Puller(notifier.stub, "sync")
    await garbled.ack("not-a-cursor")
    assert bad_fields(await garbled.failure()) == {"ack_cursors[0]"}


async def test_a_deleted_consumer_ends_its_streams_not_found(notifier) -> None:
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync")
    await pull.call.initial_metadata()
    from zoho.notifier.v1 import notifier_pb2

    await notifier.stub.DeleteConsumer(notifier_pb2.DeleteConsumerRequest(consumer_id="sync"))
    assert (await pull.failure()).code() == grpc.StatusCode.NOT_FOUND


async def test_a_draining_stream_is_sent_nothing_more(notifier) -> None:
    await append(notifier, "1", "2", "3")
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync", max_outstanding=1)
    (event, _), = await pull.wait_for(1)
    from zoho.notifier.v1 import notifier_pb2

    await pull.call.write(notifier_pb2.PullRequest(drain=True, nack_cursors=[event.cursor]))
    await asyncio.sleep(0.5)
    assert len(pull.received) == 1
    await pull.close()
    assert pull.ended and pull.error is None
    other = Puller(notifier.stub, "sync", max_outstanding=1)
    got = await other.wait_for(1)
    assert (got[0][0].cursor, got[0][1]) == (event.cursor, 2)
    await other.stop()


async def test_pull_streams_count_against_the_stream_caps(
    sandbox, broker, notifier_database_url
) -> None:
    from notifier.app import NotifierApp
    from servicekit.runner import running
    from servicekit.streams import StreamLimits
    from tests.plugins.notifier_fixtures import notifier_config
    from zoho.notifier.v1 import notifier_pb2_grpc

    config = notifier_config(sandbox.origin, broker.address, notifier_database_url,
                             streams=StreamLimits(max_streams_per_peer=1))
    async with running(NotifierApp(config), grace=0, migrate=False) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            await create(stub)
            first = Puller(stub, "sync")
            await first.call.initial_metadata()
            second = Puller(stub, "sync")
            refused = await second.failure()
            assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert reason(refused) == "TOO_MANY_STREAMS"
            await first.stop()


@pytest.mark.slow
async def test_a_pull_reader_that_stops_reading_is_ended_consumer_stalled(
    sandbox, broker, notifier_database_url
) -> None:
    from notifier.app import NotifierApp
    from servicekit.runner import running
    from servicekit.streams import StreamLimits
    from tests.plugins.notifier_fixtures import notifier_config
    from tests.plugins.raw_h2 import RawH2Client
    from zoho.notifier.v1 import notifier_pb2, notifier_pb2_grpc

    config = notifier_config(sandbox.origin, broker.address, notifier_database_url,
                             streams=StreamLimits(write_timeout_seconds=0.5))
    app = NotifierApp(config)
    async with running(app, grace=0, migrate=False) as address:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = notifier_pb2_grpc.NotifierServiceStub(channel)
            await create(stub)
            await app.live.writer.append([new_event(str(i)) for i in range(300)])
            slots = app.server.calls.slots
            client = RawH2Client(address, window=16, drain=False)
            try:
                first = notifier_pb2.PullRequest(consumer_id="sync", max_outstanding=1000)
                stream = client.start("/zoho.notifier.v1.NotifierService/Pull",
                                      first.SerializeToString(), end_stream=False)
                pumping = asyncio.create_task(asyncio.to_thread(client.pump, 3.0))
                async with asyncio.timeout(10):
                    while slots.open != 1:
                        await asyncio.sleep(0.02)
                    while slots.open != 0:  # ended by the write timeout, not by us
                        await asyncio.sleep(0.02)
                await pumping
                client.reopen(stream)
                await asyncio.to_thread(client.pump, 1.0)
                reply = client.replies[stream]
            finally:
                client.close()
            assert reply.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
            assert b"CONSUMER_STALLED" in reply.status_details


async def test_a_read_of_only_waiting_events_reads_on_without_a_wake_up(notifier) -> None:
    """More events behind a busy record than one claim reads: the claim says more is
    waiting and the Pull claims again at once. Nothing else would wake it meanwhile (no
    new event, no ack), and its poll is a minute."""
    consumers = notifier.app.live.consumers
    consumers._config = dataclasses.replace(consumers._config, poll_seconds=60.0)
    await append(notifier, *["busy"] * (READ_BATCH + 50), "other")
    await create(notifier.stub)
    pull = Puller(notifier.stub, "sync", max_outstanding=100)
    await pull.wait_for(2, limit=30)
    assert pull.records == ["busy", "other"]
    await pull.stop()
