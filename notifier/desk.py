"""Zoho Desk's webhooks, its notification subscriptions (docs/zoho.md section 3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from notifier import converters
from notifier.broker_client import BrokerToken
from notifier.paging import Converting, Page
from notifier.zoho_http import ZohoCall, ZohoHttp
from servicekit import scopes
from servicekit.deadline import Deadline
from servicekit.errors import ZohoBadResponse
from zoho.notifier.v1 import notifier_pb2

MAX_PAGE_SIZE = 100



class DeskClient:
    """Calls one Desk host; `origin` is the caller's to choose (OriginPolicy.desk_origin)."""

    def __init__(self, http: ZohoHttp) -> None:
        self._http = http

    async def organizations(
        self, grant: BrokerToken, origin: str, *, deadline: Deadline
    ) -> list[dict[str, Any]]:
        endpoint = "desk.organizations"
        call = ZohoCall(
            app="desk",
            endpoint=endpoint,
            method="GET",
            url=f"{origin}/api/v1/organizations",
            scope=scopes.DESK_ORGS,
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        orgs = converters.list_field(reply.body, "data", endpoint)
        if not all(isinstance(org, dict) for org in orgs):
            raise ZohoBadResponse("an organisation is not a JSON object", endpoint=endpoint)
        return orgs

    async def list_page(
        self,
        grant: BrokerToken,
        origin: str,
        org_id: str,
        *,
        start: int,
        limit: int,
        deadline: Deadline,
    ) -> Page[notifier_pb2.Notification, int]:
        endpoint = "desk.webhooks.list"
        call = ZohoCall(
            app="desk",
            endpoint=endpoint,
            method="GET",
            url=f"{origin}/api/v1/webhooks",
            scope=scopes.DESK_READ,
            params={"from": str(start), "limit": str(limit)},
            headers={"orgId": org_id},
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        raw = converters.list_field(reply.body, "data", endpoint)
        if len(raw) > limit:
            # More than we asked for is not a page of Desk's: refuse it rather than stream it.
            raise ZohoBadResponse(
                f"a page of {len(raw)} webhooks; {limit} were asked for", endpoint=endpoint
            )
        items = Converting(raw, lambda item: converters.desk_notification(item, endpoint))
        # Desk has no "more" flag: a full page may have a next one.
        return Page(items, start + len(raw) if len(raw) >= limit else None)

    async def create(
        self, grant: BrokerToken, origin: str, org_id: str, body: dict[str, Any], *,
        deadline: Deadline,
    ) -> notifier_pb2.DeskWebhook:
        call = ZohoCall(
            app="desk",
            endpoint="desk.webhooks.create",
            method="POST",
            url=f"{origin}/api/v1/webhooks",
            scope=scopes.DESK_CREATE,
            headers={"orgId": org_id},
            json_body=body,
            # Sent twice, it would make two webhooks.
            idempotent=False,
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        return converters.desk_webhook(reply.body, call.endpoint)

    async def update(
        self,
        grant: BrokerToken,
        origin: str,
        org_id: str,
        webhook_id: str,
        body: dict[str, Any],
        *,
        deadline: Deadline,
    ) -> notifier_pb2.DeskWebhook:
        if "subscriptions" not in body:
            # Desk's PATCH requires subscriptions (Webhook.json): send the current ones.
            current = await self._get(grant, origin, org_id, webhook_id, deadline=deadline)
            body = {**body, "subscriptions": current.get("subscriptions")}
        call = ZohoCall(
            app="desk",
            endpoint="desk.webhooks.update",
            method="PATCH",
            url=f"{origin}/api/v1/webhooks/{quote(webhook_id, safe='')}",
            scope=scopes.DESK_UPDATE,
            headers={"orgId": org_id},
            json_body=body,
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        return converters.desk_webhook(reply.body, call.endpoint)

    async def _get(
        self, grant: BrokerToken, origin: str, org_id: str, webhook_id: str, *, deadline: Deadline
    ) -> dict[str, Any]:
        endpoint = "desk.webhooks.get"
        call = ZohoCall(
            app="desk",
            endpoint=endpoint,
            method="GET",
            url=f"{origin}/api/v1/webhooks/{quote(webhook_id, safe='')}",
            scope=scopes.DESK_READ,
            headers={"orgId": org_id},
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        if not isinstance(reply.body, dict):
            raise ZohoBadResponse("the webhook is not a JSON object", endpoint=endpoint)
        return reply.body

    async def delete(
        self, grant: BrokerToken, origin: str, org_id: str, webhook_id: str, *, deadline: Deadline
    ) -> None:
        call = ZohoCall(
            app="desk",
            endpoint="desk.webhooks.delete",
            method="DELETE",
            url=f"{origin}/api/v1/webhooks/{quote(webhook_id, safe='')}",
            scope=scopes.DESK_DELETE,
            headers={"orgId": org_id},
        )
        await self._http.send(call, grant.access_token, deadline)
