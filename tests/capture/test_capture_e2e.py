"""Change capture end to end: the sandbox as Zoho (records, COQL, deleted records, Desk
search, credits, dropped callbacks), a real notifier with its broker, events read through
WatchNotifications."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from notifier.capture import metrics
from notifier.capture.models import CaptureCursor
from tests.capture.conftest import SETTLE, SWEEP, Captured, captured_notifier, subscribed
from tests.live.helpers import crm_subscription
from zoho.notifier.v1 import notifier_pb2 as pb

RECOVERED = pb.EVENT_ORIGIN_RECOVERED
CALLBACK = pb.EVENT_ORIGIN_CALLBACK


def ours(deliveries: list, sub: pb.Subscription) -> list:
    return [d for d in deliveries if d.subscription == sub.zoho_id]


def ids(delivery) -> list[str]:
    return json.loads(delivery.body)["ids"]


def _changes(events: list[pb.NotificationEvent]) -> list[tuple[str, str, int]]:
    return [(e.operation, e.record_id, e.origin) for e in events if e.operation != "gap"]


async def test_a_dropped_callback_is_recovered_by_the_sweep_once(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    sub, _ = await crm_subscription(captured.handle, sandbox, events=("Leads.all",))
    await captured.advance(SETTLE + 1)  # enrolled, read back once: nothing new
    await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
    lost = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "Lost"}}]), sub)
    told = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "Told"}}]), sub)
    assert [d.status for d in lost] == ["dropped"] and [d.status for d in told] == [200]
    lost_id = ids(lost[0])[0]
    told_id = ids(told[0])[0]
    before = (await sandbox.credits("crm"))["used"]
    swept = metrics.RECOVERED.labels("crm", "Leads", "sweep")._value.get()

    await captured.advance(SWEEP + SETTLE)
    events = await captured.events(sub.subscription_id, 2)
    assert metrics.RECOVERED.labels("crm", "Leads", "sweep")._value.get() - swept == 1
    assert sorted(_changes(events)) == sorted(
        [("create", told_id, CALLBACK), ("create", lost_id, RECOVERED)]
    )
    recovered = next(e for e in events if e.origin == RECOVERED)
    assert recovered.module == "Leads" and not recovered.HasField("values")
    assert recovered.record_modified_time.seconds > 0
    # One COQL call (1 credit at LIMIT 200) and one deleted-records page read it back.
    assert (await sandbox.credits("crm"))["used"] - before <= 3
    covered = (await captured.subscription(sub.subscription_id)).covered_until
    assert covered.ToDatetime(tzinfo=UTC).timestamp() >= await sandbox.now() - SETTLE - 2

    # Swept again later: nothing is emitted twice.
    await captured.advance(SWEEP + SETTLE)
    again = await captured.events(sub.subscription_id, 2)
    assert len(_changes(again)) == 2


async def test_deletes_are_recovered_with_the_id_only(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    sub, _ = await crm_subscription(captured.handle, sandbox, events=("Leads.delete",))
    records = (await sandbox.records("crm", "Leads", full=True))["records"]
    record_id = records[0]["id"]
    await captured.advance(SETTLE + 1)
    await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
    gone = ours(await sandbox.change_records("crm", "Leads", "delete", [record_id]), sub)
    assert [d.status for d in gone] == ["dropped"]
    await captured.advance(SWEEP + SETTLE)
    events = await captured.events(sub.subscription_id, 1)
    assert _changes(events) == [("delete", record_id, RECOVERED)]
    assert not events[0].HasField("values") and not events[0].affected_fields


async def test_a_create_only_subscription_recovers_creations_only(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    sub = await subscribed(captured, ("Leads.create",))
    records = (await sandbox.records("crm", "Leads", full=True))["records"]
    old_id = records[0]["id"]
    await sandbox.delivery_fault("drop", count=None, subscription=sub.zoho_id)
    made = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "N"}}]), sub)
    await sandbox.change_records("crm", "Leads", "update", [{"id": old_id,
                                                             "values": {"Company": "E"}}])
    new_id = ids(made[0])[0]
    await captured.advance(SWEEP + SETTLE)
    events = await captured.events(sub.subscription_id, 1)
    assert _changes(events) == [("create", new_id, RECOVERED)]


async def test_at_start_every_watermark_is_behind_and_caught_up(
    captured: Captured, sandbox, connect_subscriber, broker, notifier_database_url
) -> None:
    await connect_subscriber()
    sub = await subscribed(captured)
    # The notifier is down (nobody answers the callback): Zoho loses it.
    await captured.handle.app.stop(0)
    made = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "D"}}]), sub)
    assert [d.status for d in made] != [200]
    await sandbox.advance_clock(SETTLE + 1)
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 sweep_seconds=0) as restarted:
        await restarted.advance(SETTLE + 1)  # the start read waits out the settle margin
        events = await restarted.events(sub.subscription_id, 1)
    assert _changes(events) == [("create", ids(made[0])[0], RECOVERED)]


async def test_a_change_in_the_last_seconds_before_a_start_is_read_back_without_a_sweep(
    captured: Captured, sandbox, connect_subscriber, broker, notifier_database_url
) -> None:
    """The start read reaches the moment the notifier came back: a change lost just before
    it (within the settle margin) does not wait for a sweep (there is none here)."""
    await connect_subscriber()
    sub = await subscribed(captured)
    await captured.handle.app.stop(0)
    await sandbox.advance_clock(SETTLE + 1)
    made = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "Last second"}}]), sub)
    assert [d.status for d in made] != [200]
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 sweep_seconds=0) as restarted:
        await restarted.capture.settle()  # at start: not yet, the margin has not passed
        await restarted.advance(SETTLE + 1)
        events = await restarted.events(sub.subscription_id, 1)
    assert _changes(events) == [("create", ids(made[0])[0], RECOVERED)]


async def test_watermarks_are_per_module(captured: Captured, sandbox, connect_subscriber) -> None:
    await connect_subscriber()
    sub, _ = await crm_subscription(
        captured.handle, sandbox, events=("Leads.create", "Deals.edit")
    )
    await captured.advance(SETTLE + 1)
    async with captured.handle.app.live.engine.connect() as conn:
        modules = (await conn.execute(
            select(CaptureCursor.module).where(CaptureCursor.subscription_id == sub.subscription_id)
        )).scalars().all()
    assert sorted(modules) == ["Deals", "Leads"]


async def test_spent_credits_announce_one_gap_then_the_window_is_read_when_they_return(
    sandbox, broker, notifier_database_url, connect_subscriber
) -> None:
    await connect_subscriber()
    # Two credits a day: the first read (deleted records + one COQL call) spends them.
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 credits_per_day=2) as captured:
        sub = await subscribed(captured)
        await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
        made = ours(await sandbox.change_records(
            "crm", "Leads", "insert", [{"values": {"Company": "Broke"}}]), sub)
        await captured.advance(SWEEP + SETTLE)
        await captured.advance(SWEEP + SETTLE)  # a retry: no second gap event
        events = await captured.events(sub.subscription_id, 1)
        gaps = [e for e in events if e.operation == "gap"]
        assert [g.gap_reason for g in gaps] == ["CREDITS_EXHAUSTED"]
        assert _changes(events) == []
        stuck = await captured.subscription(sub.subscription_id)
        assert "CREDITS_EXHAUSTED" in stuck.last_error
        assert stuck.status == pb.SUBSCRIPTION_STATUS_ACTIVE
        assert stuck.covered_until.ToDatetime(tzinfo=UTC) <= gaps[0].missed_from.ToDatetime(
            tzinfo=UTC)

        await captured.advance(86400 + 60)  # the day's spends age out; the retry is due
        events = await captured.events(sub.subscription_id, 2)
        assert _changes(events) == [("create", ids(made[0])[0], RECOVERED)]
        assert (await captured.subscription(sub.subscription_id)).last_error == ""


async def test_without_read_scopes_callbacks_flow_and_one_gap_names_the_scope(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES

    await connect_subscriber(scopes=[s for s in SUBSCRIBING_SCOPES if s != "ZohoCRM.modules.READ"])
    sub, _ = await crm_subscription(captured.handle, sandbox, events=("Leads.all",))
    before = len(await sandbox.calls("crm.coql"))
    await captured.advance(SETTLE + 1)
    told = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "Still"}}]), sub)
    await captured.advance(SWEEP + SETTLE)
    events = await captured.events(sub.subscription_id, 2)
    [gap] = [e for e in events if e.operation == "gap"]
    assert gap.gap_reason == "MISSING_SCOPE"
    assert gap.values["scope"] == "ZohoCRM.modules.READ"
    assert _changes(events) == [("create", ids(told[0])[0], CALLBACK)]
    got = await captured.subscription(sub.subscription_id)
    assert "MISSING_SCOPE" in got.last_error and "ZohoCRM.modules.READ" in got.last_error
    assert got.status == pb.SUBSCRIPTION_STATUS_ACTIVE
    assert got.covered_until == got.created_time
    # Zoho was never asked for what the grant cannot read.
    assert len(await sandbox.calls("crm.coql")) == before


async def test_a_dropped_desk_ticket_change_is_recovered_with_the_record(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    from tests.live.helpers import desk_subscription

    await connect_subscriber()
    sub, _ = await desk_subscription(captured.handle, sandbox)
    await captured.advance(SETTLE + 1)
    await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
    lost = ours(await sandbox.change_records(
        "desk", "Ticket", "insert", [{"values": {"subject": "Printer on fire"}}]), sub)
    assert [d.status for d in lost] == ["dropped"]
    ticket = json.loads(lost[0].body)[0]["payload"]
    await captured.advance(SWEEP + SETTLE)
    events = await captured.events(sub.subscription_id, 1)
    assert _changes(events) == [("Ticket_Add", ticket["id"], RECOVERED)]
    assert events[0].values["subject"] == "Printer on fire"
    modified = events[0].record_modified_time.ToDatetime(tzinfo=UTC)
    assert modified.isoformat()[:19] == events[0].values["modifiedTime"][:19]


async def channel_disabled_behind_our_back(captured: Captured, sandbox) -> tuple[Any, Any]:
    """A Leads subscription, read back once, whose channel is then disabled at Zoho."""
    sub, _ = await crm_subscription(captured.handle, sandbox, events=("Leads.all",))
    keeper = captured.handle.app.keeper
    assert keeper is not None
    await keeper.settle()
    await captured.advance(SETTLE + 1)
    await captured.stub.DisableCrmChannels(
        pb.DisableCrmChannelsRequest(user_id="demo", channel_ids=[sub.zoho_id]), timeout=10
    )
    return sub, keeper


async def unheard_insert(sandbox, sub: pb.Subscription, company: str) -> str:
    """A Lead made while the subscription's channel is missing: no callback; its id."""
    unheard = await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": company}}])
    assert ours(unheard, sub) == []  # no channel: no callback
    return str(max(
        (await sandbox.records("crm", "Leads", full=True))["records"],
        key=lambda r: int(r["id"]),
    )["id"])


async def test_a_channel_deleted_behind_our_back_is_read_back_on_repair_without_a_gap(
    sandbox, broker, notifier_database_url, connect_subscriber
) -> None:
    await connect_subscriber()
    # No periodic sweep: only the keeper's repair can make it read back.
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 sweep_seconds=0) as captured:
        sub, keeper = await channel_disabled_behind_our_back(captured, sandbox)
        record_id = await unheard_insert(sandbox, sub, "Unheard")
        await sandbox.advance_clock(keeper.config.reconcile_seconds + 1)
        await keeper.settle()  # the reconcile puts the channel back and reports the gap
        await captured.advance(SETTLE + 1)
        events = await captured.events(sub.subscription_id, 1)
    assert _changes(events) == [("create", record_id, RECOVERED)]
    assert [e for e in events if e.operation == "gap"] == []


async def test_a_change_just_before_a_channel_is_repaired_is_read_back_without_a_sweep(
    sandbox, broker, notifier_database_url, connect_subscriber
) -> None:
    """The repair's read reaches the moment the channel was back: a change made while it
    was missing, within the settle margin of the repair, does not wait for a sweep."""
    await connect_subscriber()
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 sweep_seconds=0) as captured:
        sub, keeper = await channel_disabled_behind_our_back(captured, sandbox)
        await sandbox.advance_clock(keeper.config.reconcile_seconds - 1)
        record_id = await unheard_insert(sandbox, sub, "Just before")
        await sandbox.advance_clock(2)
        await keeper.settle()  # the repair, a second after the change
        await captured.capture.settle()
        await captured.advance(SETTLE + 1)
        events = await captured.events(sub.subscription_id, 1)
    assert _changes(events) == [("create", record_id, RECOVERED)]


async def test_callback_server_time_and_modified_time_agree_within_the_match_tolerance(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    """What events/dedupe.py assumes (MATCH_SECONDS), measured in the sandbox: a callback's
    server_time lies at or after the record's Modified_Time, by less than the tolerance."""
    from notifier.capture.crm_reads import parse_time
    from notifier.events.dedupe import MATCH_SECONDS

    await connect_subscriber()
    sub, _ = await crm_subscription(captured.handle, sandbox, events=("Leads.all",))
    told = []
    for n in range(5):
        told += ours(await sandbox.change_records(
            "crm", "Leads", "insert", [{"values": {"Company": f"M{n}"}}]), sub)
    records = {r["id"]: r for r in (await sandbox.records("crm", "Leads", full=True))["records"]}
    gaps = []
    for delivery in told:
        body = json.loads(delivery.body)
        modified = parse_time(records[body["ids"][0]]["Modified_Time"])
        assert modified is not None
        gaps.append(body["server_time"] / 1000 - modified.timestamp())
    assert all(0 <= gap < MATCH_SECONDS for gap in gaps), gaps


async def _bulk_unheard(sandbox, count: int) -> set[str]:
    """`count` Leads created with no callback at all (as if every one was lost)."""
    now = await sandbox.now()
    await sandbox.bulk_changes("crm", "Leads", generate={
        "count": count, "operation": "insert", "start": now - 30, "end": now - 1,
    }, callbacks=False)
    records = (await sandbox.records("crm", "Leads", full=True))["records"]
    return {r["id"] for r in records
            if datetime.fromisoformat(r["Created_Time"]).timestamp() >= int(now) - 31}


@pytest.mark.slow
async def test_a_window_past_coqls_2000_rows_is_read_by_key_at_600_records_a_credit(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    await connect_subscriber()
    sub = await subscribed(captured, ("Leads.create",))
    await sandbox.advance_clock(40)
    made = await _bulk_unheard(sandbox, 6200)
    before = len(await sandbox.calls("crm.coql"))
    credits = (await sandbox.credits("crm"))["used"]
    await captured.advance(SWEEP)
    events = await captured.events(sub.subscription_id, len(made))
    assert {e.record_id for e in events if e.origin == RECOVERED} == made
    assert len(events) == len(made)
    # LIMIT 200 first (1 credit), then 2,000-row pages keyed on (Modified_Time, id), the
    # last one ending on more_records false.
    assert len(await sandbox.calls("crm.coql")) - before == 4
    spent = (await sandbox.credits("crm"))["used"] - credits
    assert len(made) / spent >= 600


@pytest.mark.slow
async def test_get_records_resumes_from_the_last_key_when_its_page_token_runs_out(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    from tests.plugins.live_fixtures import SUBSCRIBING_SCOPES

    # No COQL scope: Get Records, whose page tokens reach only 1,000 records here.
    await connect_subscriber(scopes=[s for s in SUBSCRIBING_SCOPES if s != "ZohoCRM.coql.READ"])
    await sandbox.configure(crm_page_token_record_limit=1000)
    sub = await subscribed(captured, ("Leads.create",))
    await sandbox.advance_clock(40)
    made = await _bulk_unheard(sandbox, 2500)
    await captured.advance(SWEEP)
    events = await captured.events(sub.subscription_id, len(made))
    assert {e.record_id for e in events} == made and len(events) == len(made)
    refused = [c for c in await sandbox.calls() if c.status == 400 and "Leads" in c.path]
    assert refused, "the token's reach ended at least once and the read went on"


@pytest.mark.parametrize(
    ("fault", "reason"),
    [("status_500", "ZOHO_UNAVAILABLE"), ("throttle", "ZOHO_THROTTLED")],
    ids=["5xx", "bare-429"],
)
async def test_zoho_failing_is_retried_then_announced_once_and_read_when_it_answers(
    captured: Captured, sandbox, connect_subscriber, fault: str, reason: str
) -> None:
    """A 5xx, or a bare 429 (credits or Zoho's calls-in-flight cap: Zoho does not say
    which), is backed off and retried, announced once after 3 attempts, and the window is
    read once Zoho answers."""
    await connect_subscriber()
    sub = await subscribed(captured, ("Leads.create",))
    covered = (await captured.subscription(sub.subscription_id)).covered_until
    await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
    lost = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "Late"}}]), sub)
    await sandbox.fault("crm.coql", fault, count=None)
    await captured.advance(SWEEP + SETTLE)  # attempt 1 (each retried within by zoho_http)
    await captured.advance(30)  # attempt 2
    got = await captured.subscription(sub.subscription_id)
    assert got.covered_until == covered  # never past what was read
    assert reason in got.last_error
    await captured.advance(60)  # attempt 3: announced, once
    await captured.advance(120)  # attempt 4: not announced again
    await sandbox.clear_faults("crm.coql")
    await captured.advance(240)
    events = await captured.events(sub.subscription_id, 2)
    assert [e.gap_reason for e in events if e.operation == "gap"] == [reason]
    assert _changes(events) == [("create", ids(lost[0])[0], RECOVERED)]
    assert (await captured.subscription(sub.subscription_id)).last_error == ""


async def test_below_zohos_credit_floor_sweeps_stop_but_gap_windows_are_read(
    sandbox, broker, notifier_database_url, connect_subscriber
) -> None:
    from types import SimpleNamespace

    await connect_subscriber()
    # Zoho's allowance of 5: once half is spent it sends X-API-CREDITS-REMAINING, below
    # the floor of 10 from the first read on.
    await sandbox.set_credits("crm", allowance=5)
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 sweep_floor_credits=10) as captured:
        sub = await subscribed(captured, ("Leads.create",))
        assert (await sandbox.credits("crm"))["used"] >= 3
        await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
        lost = ours(await sandbox.change_records(
            "crm", "Leads", "insert", [{"values": {"Company": "Frugal"}}]), sub)
        used = (await sandbox.credits("crm"))["used"]
        await captured.advance(SWEEP + SETTLE)
        assert (await sandbox.credits("crm"))["used"] == used  # the sweep did not call Zoho
        # A gap (as the keeper reports one) is read back all the same.
        await captured.capture.read_back(
            SimpleNamespace(id=sub.subscription_id), since=None, until=datetime.now(UTC)
        )
        await captured.advance(SETTLE + 1)  # the gap read waits out the settle margin
        events = await captured.events(sub.subscription_id, 1)
    assert _changes(events) == [("create", ids(lost[0])[0], RECOVERED)]


async def test_an_ingress_outage_window_is_read_back_instead_of_announced_as_a_gap(
    sandbox, broker, notifier_database_url, connect_subscriber
) -> None:
    """The ingress refused deliveries while its database was down (a window written to
    notifier_outages): with capture on, announcing the window reads each subscription
    back, so the change Zoho could not deliver arrives RECOVERED and no gap is told."""
    from sqlalchemy import insert

    from notifier.database.models import OutageRow

    await connect_subscriber()
    # No periodic sweep: only the outage's read-back can bring the change back.
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 sweep_seconds=0) as captured:
        sub = await subscribed(captured)
        started = datetime.now(UTC)
        # What Zoho saw of the outage: its delivery refused, never retried.
        await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
        refused = ours(await sandbox.change_records(
            "crm", "Leads", "insert", [{"values": {"Company": "Refused"}}]), sub)
        assert [d.status for d in refused] == ["dropped"]
        record_id = ids(refused[0])[0]
        engine = captured.handle.app.live.engine
        async with engine.begin() as conn:
            await conn.execute(insert(OutageRow).values(
                replica="ingress:1", started_at=started, ended_at=datetime.now(UTC),
                refused=1))
        assert await captured.handle.app.live.outages.announce() == 1
        await captured.advance(SETTLE + 1)
        events = await captured.events(sub.subscription_id, 1)
        async with engine.connect() as conn:
            announced = (await conn.execute(select(OutageRow.announced_at))).scalar_one()
    assert _changes(events) == [("create", record_id, RECOVERED)]
    assert [e for e in events if e.operation == "gap"] == []
    assert announced is not None


async def test_gaps_reported_one_after_another_do_not_put_the_read_off(
    captured: Captured, sandbox, connect_subscriber
) -> None:
    """Each gap read waits out the settle margin; a second gap reported meanwhile must not
    push the first one's read further away (reported often enough, it never came)."""
    from types import SimpleNamespace

    await connect_subscriber()
    sub = await subscribed(captured, ("Leads.create",))
    await sandbox.delivery_fault("drop", count=1, subscription=sub.zoho_id)
    lost = ours(await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Company": "Twice reported"}}]), sub)
    await captured.advance(SETTLE + 1)
    gap = SimpleNamespace(id=sub.subscription_id)
    await captured.capture.read_back(gap, since=None, until=datetime.now(UTC))
    await captured.advance(SETTLE - 1)  # not due yet (and the notifier's clock follows)
    await captured.capture.read_back(gap, since=None, until=datetime.now(UTC))
    await captured.advance(2)  # the first report's read is due now; the sweep is not
    events = await captured.events(sub.subscription_id, 1)
    assert _changes(events) == [("create", ids(lost[0])[0], RECOVERED)]


async def test_a_creation_older_than_the_log_keeps_is_not_told_again_by_a_later_edit(
    sandbox, broker, notifier_database_url, connect_subscriber
) -> None:
    await connect_subscriber()
    async with captured_notifier(sandbox, broker, notifier_database_url,
                                 retention_seconds=3600) as captured:
        sub = await subscribed(captured)
        made = ours(await sandbox.change_records(
            "crm", "Leads", "insert", [{"values": {"Company": "Old"}}]), sub)
        record_id = ids(made[0])[0]
        assert [e.operation for e in await captured.events(sub.subscription_id, 1)] == [
            "create"]
        # Two hours on by Zoho's clock, the creation's event is past the retention and
        # pruned, as the notifier's pruning would by then.
        await captured.advance(2 * 3600)
        assert await captured.handle.app.live.log.prune(
            datetime.now(UTC) + timedelta(seconds=1)) >= 1
        # An edit, its callback delivered; the sweep then reads the record back.
        await sandbox.change_records("crm", "Leads", "update", [{"id": record_id,
                                                                 "values": {"Company": "New"}}])
        await captured.advance(SWEEP + SETTLE)
        events = await captured.events(sub.subscription_id, 1)
        # The edit once (from its callback or read back, whichever was stored first), and
        # no second "create" of a record made long ago.
        assert [(op, rid) for op, rid, _ in _changes(events)] == [("edit", record_id)]


async def test_a_desk_window_past_searchs_reach_is_read_in_slices_each_ticket_once(
    captured: Captured, sandbox, connect_subscriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Desk search reaches `from` 999 at most: a window holding more is read in slices, each
    starting at the last modifiedTime read. Here the reach is cut to two pages of 100, and
    300 tickets made over five seconds, their callbacks dropped, need three slices."""
    from notifier.capture import desk_window
    from tests.live.helpers import desk_subscription

    monkeypatch.setattr(desk_window, "MAX_FROM", 100)
    await connect_subscriber()
    sub, _ = await desk_subscription(captured.handle, sandbox)
    await captured.advance(SETTLE + 1)
    await sandbox.delivery_fault("drop", count=None, subscription=sub.zoho_id)
    made: list[str] = []
    for second in range(5):
        lost = ours(await sandbox.change_records("desk", "Ticket", "insert", [
            {"values": {"subject": f"Ticket {second}.{n}"}} for n in range(60)]), sub)
        made += [item["payload"]["id"] for d in lost for item in json.loads(d.body)]
        await sandbox.advance_clock(1)
    assert len(set(made)) == 300
    before = len(await sandbox.calls("desk.search"))
    await captured.advance(SWEEP + SETTLE)
    events = await captured.events(sub.subscription_id, 300)
    recovered = [e.record_id for e in events if e.operation == "Ticket_Add"]
    assert sorted(recovered) == sorted(made)  # every ticket, none twice
    # More than one slice: two pages each, and a slice's first page again at its start.
    assert len(await sandbox.calls("desk.search")) - before >= 4
    assert (await captured.subscription(sub.subscription_id)).last_error == ""
