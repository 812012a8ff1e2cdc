"""Zoho-shaped callbacks (docs/zoho.md section 4), POSTed to the real ingress as Zoho would.

The one place tests send callbacks: when the sandbox sends its own (records changed ->
POST to each channel's notify_url / webhook's url), these can be swapped for it. What
Zoho knows of a subscription (the notify_url and token, the webhook url) is read back
from the sandbox's CRM state and the notifier's Desk listing, as Zoho would hold it."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx

from sandbox.control.client import SandboxControl

_clock = itertools.count(int(time.time() * 1000))


def server_time() -> int:
    """Distinct millisecond times, as two real changes have."""
    return next(_clock)


async def crm_channel(
    sandbox: SandboxControl, channel_id: str, user: str = "demo"
) -> dict[str, Any]:
    """The channel as the sandbox (Zoho) holds it: notify_url and token included."""
    for item in await sandbox.crm_channels(user):
        if item["channel_id"] == channel_id:
            return item
    raise AssertionError(f"the sandbox has no channel {channel_id}")


def crm_body(
    channel: dict[str, Any],
    ids: list[str],
    *,
    operation: str = "insert",
    module: str | None = None,
    when: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "server_time": server_time() if when is None else when,
        "query_params": {},
        "module": module or channel["resource_name"],
        "resource_uri": f"https://www.zohoapis.com/crm/v2/{module or channel['resource_name']}",
        "ids": ids,
        "affected_fields": [],
        "operation": operation,
        "channel_id": channel["channel_id"],
        "token": channel["token"],
        **extra,
    }


def desk_event(
    event_type: str, record_id: str, *, when: int | None = None, prev: dict[str, Any] | None = None,
    **payload: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "eventType": event_type,
        "payload": {"id": record_id, **payload},
        "eventTime": str(server_time() if when is None else when),
        "orgId": "3981311",
    }
    if prev is not None:
        event["prevState"] = prev
    return event


class ZohoCallbacks:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def crm(self, notify_url: str, body: Any) -> httpx.Response:
        return await self.http.post(notify_url, json=body)

    async def desk(
        self, url: str, events: list[dict[str, Any]], *, jwt: str | None = None
    ) -> httpx.Response:
        headers = {"X-ZDesk-JWT": jwt} if jwt else {}
        return await self.http.post(url, json=events, headers=headers)

    async def raw(self, url: str, content: bytes) -> httpx.Response:
        return await self.http.post(
            url, content=content, headers={"Content-Type": "application/json"}
        )
