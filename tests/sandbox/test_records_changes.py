"""`POST /_sandbox/changes` changes the records for real before its callbacks go out (a
callback and the records never disagree); the bulk form; losing callbacks with `drop`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from sandbox.control.client import SandboxControl, SandboxControlError
from tests.plugins.receiver_fixtures import Receiver
from tests.sandbox.conftest import access_token, auth


def _channel(url: str, channel_id: str = "9100001") -> dict[str, Any]:
    return {"channel_id": channel_id, "events": ["Leads.all"], "notify_url": url, "token": "t"}


async def _read(http: httpx.AsyncClient, sb: SandboxControl, ids: list[str]) -> dict[str, Any]:
    token = await access_token(http, sb)
    response = await http.get(
        f"{sb.origin}/crm/v8/Leads",
        params={"fields": "Company,Last_Name,Modified_Time", "ids": ",".join(ids)},
        headers=auth(token),
    )
    return {} if response.status_code == 204 else {r["id"]: r for r in response.json()["data"]}


async def test_each_callback_names_records_as_they_now_are(
    sandbox: SandboxControl, receiver: Receiver, http: httpx.AsyncClient
):
    await sandbox.seed_crm_channels(items=[_channel(receiver.url("/crm"))], replace=True)
    [created] = await sandbox.change_records(
        "crm", "Leads", "insert", [{"values": {"Last_Name": "Newman", "Company": "Initech"}}]
    )
    [new_id] = json.loads(created.body)["ids"]
    assert len(new_id) == 19 and new_id.isdigit()
    assert (await _read(http, sandbox, [new_id]))[new_id]["Company"] == "Initech"

    [edited] = await sandbox.change_records(
        "crm", "Leads", "update", [{"id": new_id, "values": {"Company": "Initrode"}}]
    )
    assert json.loads(edited.body)["affected_fields"] == ["Company"]
    record = (await _read(http, sandbox, [new_id]))[new_id]
    assert (record["Company"], record["Last_Name"]) == ("Initrode", "Newman")

    await sandbox.change_records("crm", "Leads", "delete", [new_id])
    assert await _read(http, sandbox, [new_id]) == {}
    stored = await sandbox.records("crm", "Leads", full=True)
    [binned] = [d for d in stored["deleted_records"] if d["id"] == new_id]
    assert binned["permanent"] is False
    assert [json.loads(r.body)["operation"] for r in receiver.requests("/crm")] == [
        "insert",
        "update",
        "delete",
    ]


async def test_desk_changes_update_tickets_and_trash_them(
    sandbox: SandboxControl, http: httpx.AsyncClient
):
    token = await access_token(http, sandbox)
    headers = auth(token, orgId="3981311")
    await sandbox.change_records(
        "desk", "Ticket", "insert", [{"id": "777", "values": {"subject": "Printer on fire"}}]
    )
    ticket = (await http.get(f"{sandbox.origin}/api/v1/tickets/777", headers=headers)).json()
    assert (ticket["subject"], ticket["isTrashed"]) == ("Printer on fire", False)
    await sandbox.change_records("desk", "Ticket", "delete", ["777"])
    trashed = await http.get(f"{sandbox.origin}/api/v1/tickets/777", headers=headers)
    assert trashed.status_code == 200 and trashed.json()["isTrashed"] is True
    await sandbox.configure(desk_trashed_ticket="not_found")
    hidden = await http.get(f"{sandbox.origin}/api/v1/tickets/777", headers=headers)
    assert (hidden.status_code, hidden.json()["errorCode"]) == (404, "URL_NOT_FOUND")


async def test_bulk_changes_at_given_times(sandbox: SandboxControl, http: httpx.AsyncClient):
    now = await sandbox.now()
    result = await sandbox.bulk_changes(
        "crm",
        "Leads",
        generate={"count": 2000, "operation": "mix", "start": now - 600, "end": now, "seed": 3},
        callbacks=False,
    )
    assert (result["applied"], result["queued"]) == (2000, 0)
    counts = await sandbox.records("crm", "Leads")
    assert counts["live"] + counts["deleted"] >= 300
    assert counts["deleted"] > 0
    explicit = await sandbox.bulk_changes(
        "crm",
        "Leads",
        changes=[
            {"operation": "insert", "records": [{"id": "5725767000099000001"}], "at": now - 30},
            {
                "operation": "update",
                "records": [{"id": "5725767000099000001", "values": {"Company": "Late"}}],
                "at": now - 10,
            },
        ],
    )
    assert explicit["applied"] == 2
    record = (await _read(http, sandbox, ["5725767000099000001"]))["5725767000099000001"]
    assert record["Company"] == "Late"
    assert record["Modified_Time"] == datetime.fromtimestamp(int(now - 10), UTC).isoformat()
    # Same seed, same changes: a reset tenant ends where the first one did.
    await sandbox.reset()
    again = await sandbox.bulk_changes(
        "crm",
        "Leads",
        generate={"count": 2000, "operation": "mix", "start": now - 600, "end": now, "seed": 3},
        callbacks=False,
    )
    assert again["applied"] == 2000
    assert (await sandbox.records("crm", "Leads"))["deleted"] == counts["deleted"]


async def test_bulk_refuses_what_it_cannot_do(sandbox: SandboxControl):
    for bad in ({"generate": {"count": 0}}, {"generate": {"count": 5, "operation": "merge"}}, {}):
        try:
            await sandbox.bulk_changes("crm", "Leads", **bad)  # type: ignore[arg-type]
        except SandboxControlError as exc:
            assert exc.status == 400
        else:
            raise AssertionError(f"accepted {bad}")


async def _deliver(sb: SandboxControl, ids: list[str]) -> list[Any]:
    made = []
    for record_id in ids:
        made += await sb.change_records("crm", "Leads", "update", [record_id])
    return made


async def test_drop_by_count_still_changes_the_record(
    sandbox: SandboxControl, receiver: Receiver, http: httpx.AsyncClient
):
    await sandbox.seed_crm_channels(items=[_channel(receiver.url("/crm"))], replace=True)
    await sandbox.delivery_fault("drop", count=2)
    before = int(await sandbox.now())
    made = await _deliver(
        sandbox, ["5725767000010000001", "5725767000010000002", "5725767000010000003"]
    )
    assert [d.status for d in made] == ["dropped", "dropped", 200]
    assert len(receiver.requests("/crm")) == 1
    [stats] = (await sandbox.delivery_stats()).values()
    assert stats["statuses"] == {"dropped": 2, "200": 1} and stats["failed"] == 2
    # The records changed all the same.
    changed = (await _read(http, sandbox, ["5725767000010000001"]))["5725767000010000001"]
    assert datetime.fromisoformat(changed["Modified_Time"]).timestamp() >= before


async def test_drop_by_probability_is_repeatable(sandbox: SandboxControl, receiver: Receiver):
    await sandbox.seed_crm_channels(items=[_channel(receiver.url("/crm"))], replace=True)
    ids = [str(5725767000010000001 + i) for i in range(40)]
    outcomes = []
    for _ in range(2):
        await sandbox.clear_deliveries()
        await sandbox.delivery_fault("drop", probability=0.5, seed=11)
        outcomes.append([d.status for d in await _deliver(sandbox, ids)])
    assert outcomes[0] == outcomes[1]
    assert 5 < outcomes[0].count("dropped") < 35


async def test_drop_for_a_window_of_sandbox_time(sandbox: SandboxControl, receiver: Receiver):
    await sandbox.seed_crm_channels(items=[_channel(receiver.url("/crm"))], replace=True)
    await sandbox.delivery_fault("drop", seconds=300)
    inside = await _deliver(sandbox, ["5725767000010000001", "5725767000010000002"])
    await sandbox.advance_clock(301)
    after = await _deliver(sandbox, ["5725767000010000003"])
    assert [d.status for d in inside + after] == ["dropped", "dropped", 200]
    assert await sandbox.wait_for_deliveries(5)
