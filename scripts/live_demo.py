"""The demo's record changes: Zoho-shaped callbacks (CRM channel POST, Desk webhook
array) sent to where Zoho was told to send them, as Zoho sends them when records change.

Until the sandbox sends its own callbacks when told records changed, the demo sends
them itself, with what Zoho knows of each subscription: the CRM channel's notify_url
and token from the sandbox's state, the Desk webhook's url from the notifier's listing.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from sandbox.control_client import SandboxControl
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2


async def change_records(stub: Any, origin: str, crm: Any, desk: Any) -> int:
    """Two Leads created and one edited in CRM, a ticket added and updated in Desk."""
    async with SandboxControl(origin) as control:
        channel = next(c for c in await control.crm_channels() if c["channel_id"] == crm.zoho_id)
    listing = stub.ListNotifications(notifier_pb2.ListNotificationsRequest(
        user_id="demo", app_type=common_pb2.APP_TYPE_DESK))
    urls = [item.desk.url async for item in listing if item.desk.id == desk.zoho_id]
    url = urls[0]
    now = int(time.time() * 1000)
    base = {"query_params": {}, "module": "Leads", "affected_fields": [],
            "resource_uri": "https://www.zohoapis.com/crm/v2/Leads",
            "channel_id": channel["channel_id"], "token": channel["token"]}
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(channel["notify_url"], json={
            **base, "server_time": now, "operation": "insert",
            "ids": ["5725767000003000064", "5725767000003000065"]})
        await http.post(channel["notify_url"], json={
            **base, "server_time": now + 1, "operation": "update",
            "ids": ["5725767000003000064"], "affected_fields": ["Company"]})
        await http.post(url, json=[
            {"eventType": "Ticket_Add", "eventTime": str(now), "orgId": "3981311",
             "payload": {"id": "1892000000093001", "subject": "Printer jam"}},
            {"eventType": "Ticket_Update", "eventTime": str(now + 5), "orgId": "3981311",
             "payload": {"id": "1892000000093001", "subject": "Printer jam", "status": "Closed"},
             "prevState": {"status": "Open"}},
        ])
    return 5
