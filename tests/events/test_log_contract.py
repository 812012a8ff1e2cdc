"""The event log's contract (notifier/events/log.py), held by both backends on real
databases: SQLite, and PostgreSQL in the same run (events/log_sqlite.py,
events/log_postgres.py). Append with the writer's connection and capture's
append_recovered, read after a cursor, order, dedupe (by key, and by change: a late
callback of a recovered change), last_event_time, and retention."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from notifier.app_types import CRM, DESK
from notifier.database import DATABASE
from notifier.database.models import SubscriptionRow
from notifier.events.cursor import format_cursor
from notifier.events.log import EventFilter, EventLog, Logged, NewEvent
from notifier.events.log_postgres import PostgresEventLog
from notifier.events.log_sqlite import SqliteEventLog
from notifier.events.open_log import open_event_log
from tests.plugins.notifier_fixtures import fresh_notifier_database
from zoho.notifier.v1 import notifier_pb2 as pb

SUB = "sub_" + "c" * 24
OTHER = "sub_" + "d" * 24
T = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
BACKENDS = {"sqlite": SqliteEventLog, "postgres": PostgresEventLog}


@pytest.fixture(params=[
    pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres),
])
async def event_log(request: pytest.FixtureRequest, tmp_path: object) -> AsyncIterator[EventLog]:
    url = fresh_notifier_database(request.param, request, tmp_path)
    engine = DATABASE.make_async_engine(url)
    async with engine.begin() as conn:
        for sub, user in ((SUB, "demo"), (OTHER, "other")):
            await conn.execute(insert(SubscriptionRow).values(
                id=sub, user_id=user, app_type=CRM, events=json.dumps(["Leads.all"]),
                status="active", secret_digest="0" * 64, notify_on_related_action=False,
                return_affected_field_values=False, created_at=T, updated_at=T,
            ))
    log = open_event_log(engine)
    assert type(log) is BACKENDS[request.param]
    yield log
    await engine.dispose()


def event(record: str, *, key: str = "", sub: str = SUB, user: str = "demo", app: int = CRM,
          operation: str = "edit", origin: int = pb.EVENT_ORIGIN_CALLBACK,
          changed: datetime | None = None) -> NewEvent:
    message = pb.NotificationEvent(
        subscription_id=sub, user_id=user, app_type=app, module="Leads",  # type: ignore[arg-type]
        operation=operation, record_id=record, origin=origin,  # type: ignore[arg-type]
    )
    if changed is not None:
        field = message.event_time if origin == pb.EVENT_ORIGIN_CALLBACK else (
            message.record_modified_time)
        field.FromDatetime(changed)
    return NewEvent(key or f"{sub}:{record}:{operation}:{changed}", message)


async def append(log: EventLog, events: list[NewEvent], at: datetime = T) -> list[Logged]:
    writer = await log.writer_connection()
    try:
        return await log.append(events, at, writer)
    finally:
        await writer.close()


def records(items: list[Logged]) -> list[str]:
    return [pb.NotificationEvent.FromString(item.wire).record_id for item in items]


async def test_appended_events_come_back_in_cursor_order_with_their_cursors(
    event_log: EventLog,
) -> None:
    writer = await event_log.writer_connection()
    try:
        first = await event_log.append([event("1"), event("2")], T, writer)
        # The writer keeps its connection for every commit.
        second = await event_log.append([event("3")], T + timedelta(seconds=1), writer)
    finally:
        await writer.close()
    cursors = [item.cursor for item in first + second]
    assert cursors == sorted(cursors) and len(set(cursors)) == 3
    read = await event_log.read_after(0, EventFilter(), 100)
    assert read == first + second
    for item in read:
        parsed = pb.NotificationEvent.FromString(item.wire)
        assert parsed.cursor == format_cursor(item.cursor)
        assert (parsed.user_id, parsed.app_type, parsed.subscription_id) == (
            item.user_id, item.app_type, item.subscription_id)
        assert parsed.received_time.ToDatetime(tzinfo=UTC) in (T, T + timedelta(seconds=1))
    assert records(read) == ["1", "2", "3"]
    assert await event_log.bounds() == (0, cursors[-1])


async def test_read_after_a_cursor_through_a_bound_by_filter_and_limit(
    event_log: EventLog,
) -> None:
    stored = await append(event_log, [
        event("1"), event("2", sub=OTHER, user="other"), event("3", app=DESK),
        event("4"), event("5"),
    ])
    c = [item.cursor for item in stored]
    assert records(await event_log.read_after(c[1], EventFilter(), 100)) == ["3", "4", "5"]
    assert records(await event_log.read_after(c[0], EventFilter(), 100, through=c[3])) == [
        "2", "3", "4"]
    assert records(await event_log.read_after(0, EventFilter(), 2)) == ["1", "2"]
    assert records(await event_log.read_after(0, EventFilter(user_id="other"), 100)) == ["2"]
    assert records(await event_log.read_after(0, EventFilter(app_type=DESK), 100)) == ["3"]
    assert records(await event_log.read_after(
        0, EventFilter(user_id="demo", app_type=CRM, subscription_id=SUB), 100)) == [
        "1", "4", "5"]
    assert await event_log.read_after(c[-1], EventFilter(), 100) == []


async def test_a_dedupe_key_is_stored_once(event_log: EventLog) -> None:
    [first] = await append(event_log, [event("1", key="k1"), event("1", key="k1")])
    assert await append(event_log, [event("1", key="k1")]) == []
    [later] = await append(event_log, [event("1", key="k1"), event("2", key="k2")])
    assert records([later]) == ["2"] and later.cursor > first.cursor
    assert records(await event_log.read_after(0, EventFilter(), 100)) == ["1", "2"]


async def test_a_late_callback_of_a_recovered_change_is_dropped(event_log: EventLog) -> None:
    changed = T - timedelta(minutes=5)
    async with event_log.engine.begin() as conn:
        recovered = await event_log.append_recovered(conn, [
            event("7", origin=pb.EVENT_ORIGIN_RECOVERED, changed=changed),
        ], T)
    assert records(recovered) == ["7"]
    # Its callback, arriving late, tells the same change: dropped.
    late = event("7", changed=changed + timedelta(milliseconds=700))
    assert await append(event_log, [late]) == []
    # A later change of the record is one of its own.
    assert records(await append(event_log, [event("7", changed=T - timedelta(seconds=30))])) == [
        "7"]
    # And a read-back of a change already told is skipped.
    async with event_log.engine.begin() as conn:
        again = await event_log.append_recovered(conn, [
            event("7", key="again", origin=pb.EVENT_ORIGIN_RECOVERED, changed=changed),
        ], T)
    assert again == []
    assert len(await event_log.read_after(0, EventFilter(), 100)) == 2


async def test_recovered_events_take_cursors_after_the_writers(event_log: EventLog) -> None:
    [told] = await append(event_log, [event("1")])
    async with event_log.engine.begin() as conn:
        recovered = await event_log.append_recovered(conn, [
            event("8", origin=pb.EVENT_ORIGIN_RECOVERED, changed=T),
            event("9", origin=pb.EVENT_ORIGIN_RECOVERED, changed=T),
        ], T)
    assert [item.cursor for item in recovered] == sorted(item.cursor for item in recovered)
    assert recovered[0].cursor > told.cursor
    assert await event_log.read_after(told.cursor, EventFilter(), 100) == recovered
    async with event_log.engine.begin() as conn:
        assert await event_log.append_recovered(conn, [], T) == []


async def test_an_append_touches_last_event_time_but_a_gap_does_not(event_log: EventLog) -> None:
    await append(event_log, [event("1", sub=SUB), event("", sub=OTHER, operation="gap")])
    async with event_log.engine.connect() as conn:
        touched = {sub: at for sub, at in (await conn.execute(
            select(SubscriptionRow.id, SubscriptionRow.last_event_time))).all()}
    assert touched[SUB] is not None and touched[SUB].replace(tzinfo=UTC) == T
    assert touched[OTHER] is None


async def test_pruning_removes_what_is_past_the_retention_and_moves_the_bound(
    event_log: EventLog,
) -> None:
    old = await append(event_log, [event("1"), event("2")], T)
    kept = await append(event_log, [event("3")], T + timedelta(hours=2))
    seen: list[int] = []

    async def before_delete(conn: object, last: int) -> None:
        seen.append(last)

    assert await event_log.prune(T + timedelta(hours=1), before_delete=before_delete) == 2
    assert seen == [old[-1].cursor]
    assert await event_log.bounds() == (old[-1].cursor, kept[0].cursor)
    assert await event_log.read_after(0, EventFilter(), 100) == kept
    # Nothing more to prune: no hook, no change.
    assert await event_log.prune(T + timedelta(hours=1), before_delete=before_delete) == 0
    assert seen == [old[-1].cursor]
    # Cursors keep rising after a prune; an emptied log keeps its bound.
    [new] = await append(event_log, [event("4")], T + timedelta(hours=3))
    assert new.cursor > kept[0].cursor
    assert await event_log.prune(T + timedelta(hours=4)) == 2
    assert await event_log.bounds() == (new.cursor, new.cursor)
