"""The demo's record changes, made at the sandbox: it then calls the demo's subscriptions
as Zoho does (a CRM channel POST with several ids, a Desk webhook array)."""

from __future__ import annotations

import json
from typing import Any

from sandbox.control.client import SandboxControl


async def change_records(origin: str) -> int:
    """Two Leads created and one edited in CRM, a ticket added and updated in Desk: five
    events. Returns how many the watchers should see."""
    async with SandboxControl(origin) as control:
        await control.change_records(
            "crm", "Leads", "insert", ["5725767000003000064", "5725767000003000065"])
        await control.change_records(
            "crm", "Leads", "update", ["5725767000003000064"], fields=["Company"])
        ticket: dict[str, Any] = {"id": "1892000000093001",
                                  "values": {"subject": "Printer jam", "status": "Open"}}
        await control.change_records("desk", "Ticket", "insert", [ticket])
        await control.change_records("desk", "Ticket", "update", [{
            **ticket, "values": {"subject": "Printer jam", "status": "Closed"},
            "prev": {"status": "Open"}}], fields=["status"])
    return 5


async def create_lead_unheard(origin: str, channel_id: str) -> str:
    """A Lead created with the channel's callback dropped. Returns the new record's id."""
    async with SandboxControl(origin) as control:
        await control.delivery_fault("drop", count=1, subscription=channel_id)
        made = await control.change_records(
            "crm", "Leads", "insert", [{"values": {"Company": "Heard of by read-back"}}])
    [dropped] = [d for d in made if d.subscription == channel_id]
    record_id: str = json.loads(dropped.body)["ids"][0]
    return record_id
