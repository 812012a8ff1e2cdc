"""Two notifier processes on one PostgreSQL database share a consumer: four Pulls over
both drain it with each event acked, each record's events one at a time in order, and
a replica killed mid-drain loses nothing (its leases lapse to the other)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from sqlalchemy import create_engine, text

from notifier.database import DATABASE
from notifier.events.cursor import format_cursor
from tests.consumers.drain import DrainingPull, judge, seed
from tests.consumers.helpers import create, get
from tests.plugins.broker_fixtures import TEST_KEY
from tests.plugins.notifier_fixtures import NOTIFIER_TABLES
from tests.plugins.processes import ServiceProcess
from zoho.notifier.v1 import notifier_pb2_grpc

pytestmark = pytest.mark.postgres


@pytest.fixture
def shared_database(notifier_postgres: str) -> str:
    engine = create_engine(DATABASE.sync_url(notifier_postgres))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {NOTIFIER_TABLES} RESTART IDENTITY"))
        conn.execute(text("UPDATE notifier_event_log_state SET pruned_through = 0"))
    engine.dispose()
    return notifier_postgres


@contextlib.contextmanager
def replicas(database_url: str, broker_address: str, count: int) -> Iterator[list[ServiceProcess]]:
    env = {
        "NOTIFIER_LISTEN": "127.0.0.1:0",
        "NOTIFIER_DATABASE_URL": database_url,
        "NOTIFIER_BROKER_TARGET": broker_address,
        "NOTIFIER_ENCRYPTION_KEY": TEST_KEY,
        "NOTIFIER_KEEPER": "off",
        "NOTIFIER_CONSUMER_POLL_SECONDS": "0.2",
    }
    started: list[ServiceProcess] = []
    try:
        for _ in range(count):
            started.append(ServiceProcess("notifier", env))
        yield started
    finally:
        for process in started:
            process.terminate()


async def _until_acked(stub, newest: int, limit: float):  # type: ignore[no-untyped-def]
    async with asyncio.timeout(limit):
        while (await get(stub)).acked_until != format_cursor(newest):
            await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_four_pulls_over_two_replicas_share_the_events_in_record_order(
    broker, shared_database
) -> None:
    with replicas(shared_database, broker.address, 2) as processes:
        channels = [grpc.aio.insecure_channel(p.address) for p in processes]
        stubs = [notifier_pb2_grpc.NotifierServiceStub(c) for c in channels]
        await create(stubs[0], "sync", ack_deadline_seconds=30)
        # Each stream holds its acks until all four have a share: 4 x 5 outstanding is
        # fewer than the 30 records, so a stream that connects last still finds events
        # free to lease, however fast the first ones are.
        gate = asyncio.Event()
        pulls = [DrainingPull(stubs[i % 2], "sync", i, max_outstanding=5, gate=gate)
                 for i in range(4)]
        newest = await seed(shared_database, 600, records=30)
        tasks = [pull.start() for pull in pulls]
        async with asyncio.timeout(30):
            while not all(pull.received for pull in pulls):
                await asyncio.sleep(0.05)
        gate.set()
        await _until_acked(stubs[0], newest, limit=60)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        receptions = [r for p in pulls for r in p.received]
        verdict = judge(receptions, {format_cursor(c) for c in range(1, newest + 1)}, set())
        assert (verdict.lost, verdict.duplicates, verdict.order_breaks) == (0, 0, 0)
        assert (await get(stubs[1])).backlog == 0
        for channel in channels:
            await channel.close()


@pytest.mark.slow
async def test_a_replica_killed_mid_drain_loses_nothing(broker, shared_database) -> None:
    with replicas(shared_database, broker.address, 2) as processes:
        channels = [grpc.aio.insecure_channel(p.address) for p in processes]
        stubs = [notifier_pb2_grpc.NotifierServiceStub(c) for c in channels]
        await create(stubs[1], "sync", ack_deadline_seconds=10)
        newest = await seed(shared_database, 3000, records=50)
        pulls = [DrainingPull(stubs[i % 2], "sync", i, max_outstanding=50) for i in range(4)]
        tasks = [pull.start() for pull in pulls]
        async with asyncio.timeout(30):
            while sum(len(p.received) for p in pulls) < 600:
                await asyncio.sleep(0.01)
        victim = processes[0]
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait(timeout=10)
        with psycopg.connect(shared_database) as conn:
            held = {format_cursor(c) for (c,) in conn.execute(
                "SELECT cursor FROM notifier_consumer_deliveries"
                " WHERE holder LIKE %s AND deadline IS NOT NULL", (f"%-{victim.pid}-%",))}
        async with asyncio.timeout(90):
            while (await get(stubs[1])).acked_until != format_cursor(newest):
                await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        receptions = [r for p in pulls for r in p.received]
        verdict = judge(receptions, {format_cursor(c) for c in range(1, newest + 1)}, held)
        assert verdict.lost == 0
        assert verdict.duplicates_not_outstanding == 0, (verdict, len(held))
        assert verdict.order_breaks == 0
        for channel in channels:
            await channel.close()
