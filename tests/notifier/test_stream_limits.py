"""Bounds on server streams, with a real stalled HTTP/2 reader (tests/plugins/raw_h2.py: a
16-byte stream window that is never reopened): a write its reader does not take within
the write timeout ends the stream CONSUMER_STALLED; streams past the per-connection or the
server's cap are refused TOO_MANY_STREAMS with RetryInfo; a stream that is merely waiting
for something to send is not stalled."""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from notifier.app import NotifierApp
from servicekit.streams import PREEMPT_AFTER_SECONDS, StreamLimits
from tests.notifier.helpers import collect, list_request
from tests.plugins.notifier_fixtures import notifier_config
from tests.plugins.raw_h2 import RawH2Client
from tests.rpc_errors import seen, seen_trailer
from tests.waiting import until
from zoho.notifier.v1 import notifier_pb2_grpc

LIST_PATH = "/zoho.notifier.v1.NotifierService/ListNotifications"
REQUEST = list_request().SerializeToString()


@pytest.fixture
async def bounded(sandbox, broker):
    """A notifier with small caps and a short write timeout; `make(**limits)` starts it."""
    apps: list[NotifierApp] = []
    await broker.connect()

    async def make(max_streams: int = 50, per_peer: int = 20, timeout: float = 0.5,
                   per_address: int = 200):
        limits = StreamLimits(max_streams, per_peer, timeout, per_address)
        app = NotifierApp(notifier_config(sandbox.origin, broker.address, streams=limits))
        await app.start()
        apps.append(app)
        return app

    yield make
    for app in apps:
        await app.stop(0)


def details(reply) -> tuple[str, dict[str, str], float | None]:
    status = seen_trailer(reply.status_details)
    return status.reason, status.metadata, status.retry_seconds


@pytest.mark.slow
async def test_a_reader_that_never_drains_is_ended_and_frees_its_slot(bounded) -> None:
    app = await bounded(timeout=0.5)
    slots = app.server.calls.slots
    client = RawH2Client(app.server.address, window=16, drain=False)
    try:
        for _ in range(5):
            client.start(LIST_PATH, REQUEST)
        pumping = asyncio.create_task(asyncio.to_thread(client.pump, 4.0))
        await until(lambda: slots.open == 5)  # all five stuck in a write
        started = time.monotonic()
        await until(lambda: slots.open == 0)  # ended by the write timeout, not by us
        ended_after = time.monotonic() - started
        await pumping
        # The stalled reader got nothing passed off as complete: no OK, no end.
        assert all(r.grpc_status is None and not r.ended for r in client.replies.values())
    finally:
        client.close()
    assert ended_after < 3.0
    # The server serves others as before.
    items = await collect(app_stub(app), list_request(), timeout=10)
    assert len(items) == 250


def app_stub(app: NotifierApp) -> notifier_pb2_grpc.NotifierServiceStub:
    channel = grpc.aio.insecure_channel(app.server.address)
    return notifier_pb2_grpc.NotifierServiceStub(channel)


@pytest.mark.slow
async def test_a_reader_that_resumes_after_the_timeout_sees_consumer_stalled(bounded) -> None:
    app = await bounded(timeout=0.5)
    # A window for a few items: the first writes go out, then the reader stops.
    client = RawH2Client(app.server.address, window=1500, drain=False)
    try:
        stream = client.start(LIST_PATH, REQUEST)
        pumping = asyncio.create_task(asyncio.to_thread(client.pump, 3.0))
        await until(lambda: app.server.calls.slots.open == 1)
        await until(lambda: app.server.calls.slots.open == 0)
        await pumping
        client.reopen(stream)
        await asyncio.to_thread(client.pump, 1.0)
        reply = client.replies[stream]
    finally:
        client.close()
    assert 0 < len(reply.messages) < 250
    # Never a short list ending OK: the status the reader finds is the typed one.
    assert reply.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    reason, metadata, _ = details(reply)
    assert reason == "CONSUMER_STALLED"
    assert metadata["write_timeout_seconds"] == "0.5"


@pytest.mark.slow
async def test_streams_past_the_connection_cap_are_refused_with_retry_info(bounded) -> None:
    app = await bounded(per_peer=3, timeout=30)
    client = RawH2Client(app.server.address, window=16, drain=False)
    try:
        for _ in range(3):
            client.start(LIST_PATH, REQUEST)
        await asyncio.to_thread(client.pump, 0.5)
        fourth = client.start(LIST_PATH, REQUEST)
        await asyncio.to_thread(client.pump, 0.5)
        reply = client.replies[fourth]
        # Another connection has caps of its own: it lists as usual meanwhile.
        items = await collect(app_stub(app), list_request(), timeout=10)
    finally:
        client.close()
    assert len(items) == 250
    assert reply.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    reason, metadata, retry = details(reply)
    assert (reason, metadata["scope"], metadata["limit"]) == ("TOO_MANY_STREAMS", "connection", "3")
    assert retry is not None and retry > 0


@pytest.mark.slow
async def test_past_the_server_cap_a_caller_is_refused_while_every_stream_moves(
    bounded, sandbox
) -> None:
    app = await bounded(max_streams=4, per_peer=3, timeout=30)
    # Every open stream is waiting for Zoho (nothing stuck in a write): none can give way.
    await sandbox.latency("crm.watch", 3000)
    first = RawH2Client(app.server.address)
    second = RawH2Client(app.server.address)
    try:
        for _ in range(3):
            first.start(LIST_PATH, REQUEST)
        second.start(LIST_PATH, REQUEST)
        await until(lambda: app.server.calls.slots.open == 4)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await collect(app_stub(app), list_request(), timeout=10)
    finally:
        first.close()
        second.close()
    error = seen(refused.value)
    assert (error.code, error.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_STREAMS")
    assert error.metadata["scope"] == "server"
    assert error.retry_seconds and error.retry_seconds > 0


@pytest.mark.slow
async def test_with_every_slot_taken_a_stalled_stream_gives_way_to_a_reader(bounded) -> None:
    app = await bounded(max_streams=4, per_peer=4, timeout=30)
    slots = app.server.calls.slots
    stalled = RawH2Client(app.server.address, window=16, drain=False)
    try:
        for _ in range(4):
            stalled.start(LIST_PATH, REQUEST)
        pumping = asyncio.create_task(asyncio.to_thread(stalled.pump, 3.0))
        await until(lambda: slots.open == 4)
        await asyncio.sleep(PREEMPT_AFTER_SECONDS + 0.2)
        # Far from its 30 s write timeout, one stalled stream makes room for this caller.
        items = await collect(app_stub(app), list_request(), timeout=10)
        await until(lambda: slots.open == 3)  # the one that gave way has unwound
        await pumping
    finally:
        stalled.close()
    assert len(items) == 250
    assert slots.preempted == 1


@pytest.mark.slow
async def test_a_stream_waiting_for_something_to_send_is_not_stalled(bounded, sandbox) -> None:
    app = await bounded(timeout=0.3)
    # Each Zoho page takes 4x the write timeout to arrive: the stream has nothing to write.
    await sandbox.latency("crm.watch", 1200)
    items = await collect(app_stub(app), list_request(), timeout=20)
    assert len(items) == 250


@pytest.mark.slow
async def test_one_address_with_a_connection_per_stalled_stream_gets_its_share_only(
    bounded,
) -> None:
    """Issue 22 item 9: a stalled stream on a connection of its own costs gRPC that
    connection too, so one address may not hold every slot across many connections."""
    app = await bounded(max_streams=50, per_peer=20, timeout=30, per_address=3)
    slots = app.server.calls.slots
    clients = [RawH2Client(app.server.address, window=16, drain=False) for _ in range(4)]
    try:
        for client in clients[:3]:
            client.start(LIST_PATH, REQUEST)
        pumps = [asyncio.create_task(asyncio.to_thread(c.pump, 4.0)) for c in clients[:3]]
        await until(lambda: slots.open == 3)
        fourth = clients[3].start(LIST_PATH, REQUEST)
        await asyncio.to_thread(clients[3].pump, 0.5)
        reply = clients[3].replies[fourth]
        # Once those have been stuck a second, a reader from the same address gets in.
        await asyncio.sleep(PREEMPT_AFTER_SECONDS + 0.2)
        items = await collect(app_stub(app), list_request(), timeout=10)
        await asyncio.gather(*pumps)
    finally:
        for client in clients:
            client.close()
    assert reply.grpc_status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    reason, metadata, _ = details(reply)
    assert (reason, metadata["scope"], metadata["limit"]) == ("TOO_MANY_STREAMS", "address", "3")
    assert len(items) == 250
    assert slots.preempted >= 1
