"""CRM callbacks: a change to records POSTs docs/zoho.md section 4's body to every live channel
whose events match, and nothing else; counters, bounds and delivery faults."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from sandbox.control.client import SandboxControl, SandboxControlError
from tests.plugins.receiver_fixtures import Receiver


def _channel(url: str, channel_id: str = "9000001", **extra: Any) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "events": ["Leads.all"],
        "notify_url": url,
        "token": f"verify-{channel_id}",
        **extra,
    }


async def _seed(sb: SandboxControl, *items: dict[str, Any]) -> None:
    await sb.seed_crm_channels(items=list(items), replace=True)


async def test_insert_of_two_records_is_one_callback_with_zohos_body(
    sandbox: SandboxControl, receiver: Receiver
):
    await _seed(sandbox, _channel(receiver.url("/crm?key1=val1&key2=")))
    [delivery] = await sandbox.change_records("crm", "Leads", "insert", ["111", "222"])
    assert (delivery.status, delivery.subscription, delivery.attempt) == (200, "9000001", 1)
    [request] = receiver.requests("/crm")
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"
    body = request.json()
    assert list(body) == [
        "server_time",
        "query_params",
        "module",
        "resource_uri",
        "ids",
        "affected_fields",
        "operation",
        "channel_id",
        "token",
    ]
    assert abs(body["server_time"] / 1000 - await sandbox.now()) < 5
    assert body["query_params"] == {"key1": "val1", "key2": ""}
    assert body["module"] == "Leads"
    assert body["resource_uri"] == f"{sandbox.origin}/crm/v8/Leads"
    assert body["ids"] == ["111", "222"]
    assert body["affected_fields"] == []
    assert (body["operation"], body["channel_id"], body["token"]) == (
        "insert",
        "9000001",
        "verify-9000001",
    )
    assert json.loads(delivery.body) == body


async def test_update_carries_affected_fields_and_values_when_asked(sandbox, receiver):
    await _seed(
        sandbox,
        _channel(receiver.url("/plain"), "9000001"),
        _channel(receiver.url("/values"), "9000002", return_affected_field_values=True),
    )
    records = [{"id": "111", "values": {"Company": "Acme", "Phone": "1"}}]
    await sandbox.change_records("crm", "Leads", "update", records)
    plain = receiver.requests("/plain")[0].json()
    assert plain["affected_fields"] == ["Company", "Phone"]
    assert "affected_values" not in plain
    values = receiver.requests("/values")[0].json()
    assert values["affected_values"] == [
        {"record_id": "111", "values": {"Company": "Acme", "Phone": "1"}}
    ]
    await sandbox.configure(crm_affected_fields_shape="by_record")
    await sandbox.change_records("crm", "Leads", "update", records)
    assert receiver.requests("/plain")[1].json()["affected_fields"] == [
        {"111": ["Company", "Phone"]}
    ]


async def test_only_channels_whose_events_match_are_called(sandbox, receiver):
    await _seed(
        sandbox,
        _channel(receiver.url("/create"), "9000001", events=["Leads.create"]),
        _channel(receiver.url("/edit"), "9000002", events=["Leads.edit", "Deals.edit"]),
        _channel(receiver.url("/deals"), "9000003", events=["Deals.all"]),
    )
    done = await sandbox.change_records("crm", "Leads", "update", ["1"])
    assert [d.subscription for d in done] == ["9000002"]
    await sandbox.change_records("crm", "Leads", "delete", ["1"])
    await sandbox.change_records("crm", "Leads", "insert", ["2"])
    assert [r.json()["operation"] for r in receiver.requests("/create")] == ["insert"]
    assert [r.json()["operation"] for r in receiver.requests("/edit")] == ["update"]
    assert receiver.requests("/deals") == []


async def test_an_expired_channel_delivers_nothing(sandbox, receiver):
    await _seed(sandbox, _channel(receiver.url("/crm")))
    await sandbox.advance_clock(3601)
    assert await sandbox.change_records("crm", "Leads", "insert", ["1"]) == []
    assert receiver.requests() == []


async def test_related_record_callbacks_follow_notify_on_related_action(sandbox, receiver):
    await _seed(
        sandbox,
        _channel(receiver.url("/related"), "9000001"),
        _channel(receiver.url("/direct"), "9000002", notify_on_related_action=False),
        _channel(receiver.url("/notes"), "9000003", events=["Notes.create"]),
    )
    related = [{"module": "Leads", "ids": ["111"]}]
    await sandbox.change_records("crm", "Notes", "insert", ["555"], related=related)
    [note] = receiver.requests("/notes")
    assert note.json()["ids"] == ["555"]
    [lead] = receiver.requests("/related")
    assert (lead.json()["module"], lead.json()["ids"]) == ("Leads", ["111"])
    assert receiver.requests("/direct") == []


async def test_a_notification_condition_filters_updates_by_field(sandbox, receiver):
    condition = {
        "type": "field_selection",
        "module": {"api_name": "Leads"},
        "field_selection": {"group_operator": "or", "group": [{"api_name": "Email"}]},
    }
    await _seed(sandbox, _channel(receiver.url("/crm"), notification_condition=[condition]))
    assert await sandbox.change_records("crm", "Leads", "update", ["1"], fields=["Phone"]) == []
    assert len(await sandbox.change_records("crm", "Leads", "update", ["1"], fields=["Email"])) == 1


async def test_failures_are_counted_and_not_retried_unless_asked(sandbox, receiver):
    await _seed(sandbox, _channel(receiver.url("/crm")))
    receiver.answer("/crm", 500)
    [failed] = await sandbox.change_records("crm", "Leads", "insert", ["1"])
    assert failed.status == 500
    assert len(receiver.requests("/crm")) == 1
    await sandbox.delivery_fault("retry", retries=2, backoff_ms=10)
    attempts = await sandbox.change_records("crm", "Leads", "insert", ["2"])
    assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 500), (3, 500)]
    receiver.answer("/crm", 200)
    await sandbox.change_records("crm", "Leads", "insert", ["3"])
    stats = (await sandbox.delivery_stats())[("crm", "9000001")]
    assert (stats["attempts"], stats["delivered"], stats["failed"]) == (5, 1, 4)
    assert stats["statuses"] == {"500": 4, "200": 1}
    assert stats["latency_ms"]["count"] == 5 and stats["latency_ms"]["max"] > 0


async def test_hosts_outside_deliver_to_are_never_contacted(sandbox, receiver):
    await _seed(sandbox, _channel("https://hooks.sandbox.example/crm"))
    [blocked] = await sandbox.change_records("crm", "Leads", "insert", ["1"])
    assert blocked.status == "blocked"


async def test_duplicate_wrong_url_and_delay_faults(sandbox, receiver):
    await _seed(sandbox, _channel(receiver.url("/crm")))
    await sandbox.delivery_fault("duplicate")
    twice = await sandbox.change_records("crm", "Leads", "insert", ["1"])
    assert [d.note for d in twice] == ["", "duplicate"]
    assert len(receiver.requests("/crm")) == 2
    await sandbox.delivery_fault("wrong_url", url=receiver.url("/elsewhere"))
    await sandbox.change_records("crm", "Leads", "insert", ["2"])
    assert len(receiver.requests("/elsewhere")) == 1
    await sandbox.delivery_fault("delay", delay_ms=300)
    started = time.monotonic()
    await sandbox.change_records("crm", "Leads", "insert", ["3"], wait=False)
    await sandbox.change_records("crm", "Leads", "insert", ["4"])
    await sandbox.wait_for_deliveries()
    assert time.monotonic() - started >= 0.3
    # The delayed one was overtaken.
    assert [r.json()["ids"] for r in receiver.requests("/crm")][-2:] == [["4"], ["3"]]


async def test_reorder_swaps_two_deliveries_of_one_channel(sandbox, receiver):
    await _seed(sandbox, _channel(receiver.url("/crm")))
    await sandbox.delivery_fault("reorder")
    await sandbox.change_records("crm", "Leads", "insert", ["1"], wait=False)
    await sandbox.change_records("crm", "Leads", "insert", ["2"], wait=False)
    assert await sandbox.wait_for_deliveries()
    assert [r.json()["ids"] for r in receiver.requests("/crm")] == [["2"], ["1"]]


@pytest.mark.slow
async def test_a_slow_receiver_times_out_and_concurrency_is_bounded(sandbox, receiver):
    await sandbox.configure(crm_delivery_timeout_seconds=0.3, delivery_concurrency=2)
    await _seed(sandbox, *[_channel(receiver.url(f"/c{i}"), str(9000001 + i)) for i in range(4)])
    receiver.answer("/c0", 200, delay=5.0)
    for i in range(1, 4):
        receiver.answer(f"/c{i}", 200, delay=0.2)
    started = time.monotonic()
    done = await sandbox.change_records("crm", "Leads", "insert", ["1"])
    elapsed = time.monotonic() - started
    assert {d.subscription: d.status for d in done}["9000001"] == "timeout"
    # Two slots: the timed-out one (0.3 s) and three of 0.2 s cannot all overlap; waiting out
    # the 5 s receiver would have taken 5 s (the upper bound leaves room for a loaded machine).
    assert 0.4 <= elapsed < 3.5


async def test_delivery_bounds_must_be_positive(sandbox):
    for key in ("delivery_concurrency", "crm_delivery_timeout_seconds"):
        with pytest.raises(SandboxControlError):
            await sandbox.configure(**{key: 0})


@pytest.mark.slow
async def test_a_reset_ends_a_wait_on_queued_deliveries(sandbox, receiver):
    await _seed(sandbox, _channel(receiver.url("/slow")))
    receiver.answer("/slow", 200, delay=8.0)
    waiting = asyncio.create_task(sandbox.change_records("crm", "Leads", "insert", ["1"]))
    await asyncio.sleep(0.3)
    async with SandboxControl(sandbox.origin) as other:
        await other.reset()
    started = time.monotonic()
    assert await waiting == []
    assert time.monotonic() - started < 5.0  # not the 8 s delivery it was queued behind
