"""Change capture's storage on the real database (SQLite, or PostgreSQL with
TEST_DATABASE=postgres): one change is one event whichever way it came first, the
watermark moves only with the events and only under the fence, and the credit budget is
one ledger for every replica."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from notifier.app_types import CRM
from notifier.capture.credits import CreditBudget
from notifier.capture.found import Found, to_event
from notifier.capture.store import CaptureStore, LostLease
from notifier.database import DATABASE
from notifier.database.models import EventRow, SubscriptionRow
from notifier.events.log import EventLog
from notifier.events.open_log import open_event_log
from notifier.ingress.callbacks import Subscriber, crm_events
from notifier.ingress.limits import DeliveryLimits
from servicekit.errors import CreditsExhausted
from zoho.notifier.v1 import notifier_pb2 as pb

SUB = "sub_" + "a" * 24
CREATED = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
T = datetime(2026, 3, 1, 10, 0, 7, tzinfo=UTC)


@pytest.fixture
async def event_log(notifier_database_url: str) -> AsyncIterator[EventLog]:
    engine = DATABASE.make_async_engine(notifier_database_url)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(insert(SubscriptionRow).values(
            id=SUB, user_id="demo", app_type=CRM, events=json.dumps(["Leads.all"]),
            status="active", secret_digest="0" * 64, notify_on_related_action=False,
            return_affected_field_values=False, created_at=CREATED, updated_at=now,
        ))
    yield open_event_log(engine)
    await engine.dispose()


async def _callback(event_log: EventLog, record_id: str, server_time: datetime) -> int:
    body = {"module": "Leads", "operation": "update", "ids": [record_id],
            "server_time": int(server_time.timestamp() * 1000), "channel_id": "1"}
    connection = await event_log.writer_connection()
    try:
        stored = await event_log.append(
            list(crm_events(Subscriber(SUB, "demo"), body, DeliveryLimits())),
            datetime.now(UTC), connection,
        )
    finally:
        await connection.close()
    return len(stored)


async def _claim(store: CaptureStore, owner: str, now: datetime) -> list:
    await store.enrol(now)
    due = await store.due(now, 10)
    return await store.claim(due, owner, now + timedelta(seconds=60), now)


async def _events(event_log: EventLog) -> list[pb.NotificationEvent]:
    async with event_log.engine.connect() as conn:
        blobs = (await conn.execute(select(EventRow.event).order_by(EventRow.cursor))).scalars()
        return [pb.NotificationEvent.FromString(blob) for blob in blobs]


async def test_a_change_a_callback_told_is_not_recovered_again(event_log: EventLog) -> None:
    store = CaptureStore(event_log.engine, event_log)
    # The callback: Zoho's server_time a fraction after the change's (truncated) second.
    assert await _callback(event_log, "101", T + timedelta(milliseconds=640)) == 1
    [claimed] = await _claim(store, "replica-a", T + timedelta(minutes=5))
    assert claimed.row.covered_until == CREATED and claimed.row.module == "Leads"
    found = [Found("101", "e", T), Found("102", "e", T)]  # 102's callback was lost
    stored = await store.commit(
        claimed, [to_event(claimed.row, "Leads", f) for f in found], T + timedelta(seconds=1),
        datetime.now(UTC),
    )
    assert [s.cursor for s in stored] == [2]
    events = await _events(event_log)
    assert [(e.record_id, e.origin) for e in events] == [
        ("101", pb.EVENT_ORIGIN_CALLBACK), ("102", pb.EVENT_ORIGIN_RECOVERED)
    ]
    assert events[1].operation == "edit"
    assert events[1].record_modified_time.ToDatetime(tzinfo=UTC) == T
    # The watermark moved with the events, and the subscription shows it.
    async with event_log.engine.connect() as conn:
        covered = (await conn.execute(select(SubscriptionRow.covered_until))).scalar_one()
    assert covered == T + timedelta(seconds=1)
    # Read again (a retry after a crash): nothing is doubled.
    assert await store.commit(
        claimed, [to_event(claimed.row, "Leads", f) for f in found], T + timedelta(seconds=1),
        datetime.now(UTC),
    ) == []


async def test_a_late_callback_of_a_recovered_change_is_dropped(event_log: EventLog) -> None:
    store = CaptureStore(event_log.engine, event_log)
    [claimed] = await _claim(store, "replica-a", T + timedelta(minutes=5))
    await store.commit(claimed, [to_event(claimed.row, "Leads", Found("201", "e", T))],
                       T + timedelta(seconds=1), datetime.now(UTC))
    assert await _callback(event_log, "201", T + timedelta(milliseconds=900)) == 0
    # A later change of the same record is a change of its own.
    assert await _callback(event_log, "201", T + timedelta(seconds=30)) == 1
    assert [e.origin for e in await _events(event_log)] == [
        pb.EVENT_ORIGIN_RECOVERED, pb.EVENT_ORIGIN_CALLBACK
    ]


async def test_a_replica_that_lost_its_claim_writes_nothing(event_log: EventLog) -> None:
    store = CaptureStore(event_log.engine, event_log)
    now = T + timedelta(minutes=5)
    [stalled] = await _claim(store, "replica-a", now)
    # Replica A stalls past its lease; B takes the window over.
    later = now + timedelta(seconds=61)
    [took_over] = await store.claim(await store.due(later, 10), "replica-b", later, later)
    assert took_over.fence == stalled.fence + 1
    with pytest.raises(LostLease):
        await store.commit(stalled, [to_event(stalled.row, "Leads", Found("301", "e", T))],
                           T + timedelta(seconds=1), datetime.now(UTC))
    assert await _events(event_log) == []
    assert await store.finish(stalled, read_at=later) is False


async def test_the_credit_budget_is_one_ledger_for_every_replica(event_log: EventLog) -> None:
    one = CreditBudget(event_log.engine, 5, sweep_floor=100)
    two = CreditBudget(event_log.engine, 5, sweep_floor=100)
    now = T
    await one.spend("crm:1", 3, now)
    await two.spend("crm:1", 2, now + timedelta(hours=1))
    await one.spend("crm:2", 5, now)  # another org: its own budget
    with pytest.raises(CreditsExhausted) as spent:
        await two.spend("crm:1", 1, now + timedelta(hours=2))
    # The oldest spend ages out 24 hours after it was made.
    assert spent.value.retry_after == pytest.approx(22 * 3600)
    assert await one.spent("crm:1", now + timedelta(hours=2)) == 5
    await one.spend("crm:1", 3, now + timedelta(hours=24, seconds=1))
    # Zoho's own count, once low, stops sweeps and refuses what it cannot cover.
    await one.zoho_says("crm:1", 0, now + timedelta(hours=25))
    assert not await two.sweeping_allowed("crm:1", now + timedelta(hours=25))
    with pytest.raises(CreditsExhausted, match="Zoho says"):
        await two.spend("crm:1", 1, now + timedelta(hours=25))
