"""The record store on its own (no HTTP): what `crm_records` hands COQL, the demo's
deterministic seed, and the indexed orders a page is cut from."""

from __future__ import annotations

from datetime import datetime

from sandbox.demo import tenant as demo
from sandbox.records.record_set import Record, RecordSet
from sandbox.records.store import crm_org_key
from sandbox.state import SandboxState


def _seeded(records: int = 50) -> SandboxState:
    state = SandboxState()
    demo.seed_demo(state, crm_items=0, desk_webhooks=0, records=records)
    return state


def test_crm_records_are_get_records_dicts():
    state = _seeded()
    user = state.users[demo.DEMO_USER]
    leads = state.records.crm_records(crm_org_key(user), "Leads")
    assert len(leads) == 50
    ids = [r["id"] for r in leads]
    assert ids == sorted(ids) and all(len(i) == 19 and i.isdigit() for i in ids)
    for record in leads:
        for name in ("Created_Time", "Modified_Time"):
            assert datetime.fromisoformat(record[name]).utcoffset() is not None
        for name in ("Owner", "Created_By", "Modified_By"):
            assert record[name] == {
                "id": user.crm_user_id,
                "name": "Demo User",
                "email": "demo@sandbox.example",
            }
        assert record["Created_Time"] <= record["Modified_Time"]
    assert state.records.crm_records(crm_org_key(user), "Vendors") == []
    assert state.records.crm_records("nobody", "Leads") == []


def test_the_demo_seed_is_deterministic_and_lazy():
    first, second = _seeded(), _seeded()
    assert first.records.crm == {}  # nothing made until someone reads
    a = first.records.crm_records("demo", "Deals")
    b = second.records.crm_records("demo", "Deals")
    strip = [{k: v for k, v in r.items() if not k.endswith("_Time")} for r in a]
    assert strip == [{k: v for k, v in r.items() if not k.endswith("_Time")} for r in b]


def test_changes_keep_every_order_sorted():
    state = _seeded(20)
    user = state.users[demo.DEMO_USER]
    now = int(state.clock.now())
    leads = state.records.crm_records("demo", "Leads")
    first = leads[0]["id"]
    state.records.crm_change(
        user, "Leads", "update", [{"id": first, "values": {"Company": "X"}}], now
    )
    state.records.crm_change(user, "Leads", "insert", [{"values": {"Last_Name": "New"}}], now)
    state.records.crm_change(user, "Leads", "delete", [{"id": leads[1]["id"]}], now)
    records = state.records.crm_org(user).module("Leads")
    for sort in ("id", "created", "modified"):
        view = records.view(sort)
        assert view == sorted(view) and len(view) == 20
    last_two = [record_id for _, record_id in records.view("modified")[-2:]]
    assert str(last_two[0]) == first or str(last_two[1]) == first
    assert [rid for _, rid in records.view("modified", now)] == last_two


def test_bulk_rebuilds_the_orders_once():
    records = RecordSet()
    with records.bulk():
        for i in range(1000, 0, -1):
            records.put(Record(i, created=i, modified=2000 - i, data={"id": str(i)}))
        records.delete(500, at=5000, permanent=False)
    assert len(records) == 999 and 500 in records.deleted
    assert records.view("id")[0] == (1, 1)
    assert records.view("modified")[0] == (1000, 1000)
    assert records.view("created", since=1500) == [(i, i) for i in range(1, 501) if i != 500]
