"""Zoho CRM's notification channels ("actions/watch", docs/zoho.md section 2)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from notifier import converters
from notifier.broker_client import BrokerToken
from notifier.paging import Converting, Page
from notifier.zoho_http import ZohoCall, ZohoHttp
from servicekit import scopes
from servicekit.deadline import Deadline
from servicekit.errors import ZohoBadResponse, ZohoRejected
from zoho.notifier.v1 import notifier_pb2

WATCH_PATH = "/crm/v8/actions/watch"
MAX_PAGE_SIZE = 200
MAX_WRITE_ITEMS = 50



class CrmClient:
    """Calls one CRM API domain (the one the broker returned with the token)."""

    def __init__(self, http: ZohoHttp) -> None:
        self._http = http

    async def list_page(
        self,
        grant: BrokerToken,
        *,
        page: int,
        per_page: int,
        module: str,
        channel_id: str,
        deadline: Deadline,
    ) -> Page[notifier_pb2.Notification, int]:
        endpoint = "crm.watch.list"
        params = {"page": str(page), "per_page": str(per_page)}
        if module:
            params["module"] = module
        if channel_id:
            params["channel_id"] = channel_id
        call = ZohoCall(
            app="crm",
            endpoint=endpoint,
            method="GET",
            url=grant.api_domain + WATCH_PATH,
            scope=scopes.CRM_READ,
            params=params,
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        if reply.body is None:  # 204: nothing (more) to list
            return Page([], None)
        raw = _watch(reply.body, endpoint)
        if len(raw) > per_page:
            # More than we asked for is not a page of Zoho's: refuse it rather than stream it.
            raise ZohoBadResponse(
                f"a page of {len(raw)} items; {per_page} were asked for", endpoint=endpoint
            )
        items = Converting(raw, lambda item: converters.crm_channel(item, endpoint))
        info = reply.body.get("info")
        more = info.get("more_records") if isinstance(info, dict) else None
        if not isinstance(more, bool):
            # Without it we cannot tell the last page from a truncated list.
            raise ZohoBadResponse("info.more_records is missing", endpoint=endpoint)
        return Page(items, page + 1 if more and raw else None)

    async def write(
        self,
        grant: BrokerToken,
        method: str,
        items: Sequence[dict[str, Any]],
        *,
        scope: str,
        deadline: Deadline,
    ) -> list[notifier_pb2.WriteResult]:
        """POST/PUT/PATCH {"watch": items}: a result per item, 207 or not."""
        endpoint = f"crm.watch.{method.lower()}"
        call = ZohoCall(
            app="crm",
            endpoint=endpoint,
            method=method,
            url=grant.api_domain + WATCH_PATH,
            scope=scope,
            json_body={"watch": list(items)},
            # Channel ids are the caller's, so enabling twice leaves one channel.
            idempotent=True,
        )
        return await self._results(call, grant, deadline)

    async def disable_channels(
        self, grant: BrokerToken, channel_ids: Sequence[str], *, deadline: Deadline
    ) -> list[notifier_pb2.WriteResult]:
        call = ZohoCall(
            app="crm",
            endpoint="crm.watch.delete",
            method="DELETE",
            url=grant.api_domain + WATCH_PATH,
            scope=scopes.CRM_DELETE,
            params={"channel_ids": ",".join(channel_ids)},
        )
        results = await self._results(call, grant, deadline)
        # Zoho answers one result per module a channel covered, each naming its channel:
        # `index` is the channel's position in the request, as for other writes.
        position = {channel_id: i for i, channel_id in reversed(list(enumerate(channel_ids)))}
        for result in results:
            named = result.details.fields.get("channel_id")
            if named is not None and named.string_value in position:
                result.index = position[named.string_value]
        return results

    async def _results(
        self, call: ZohoCall, grant: BrokerToken, deadline: Deadline
    ) -> list[notifier_pb2.WriteResult]:
        try:
            reply = await self._http.send(call, grant.access_token, deadline)
        except ZohoRejected as refused:
            # A bulk write whose every item failed answers 400 with the same per-item list.
            if isinstance(refused.body, dict) and isinstance(refused.body.get("watch"), list):
                return converters.write_results(refused.body["watch"], call.endpoint)
            raise
        return converters.write_results(_watch(reply.body, call.endpoint), call.endpoint)


def _watch(body: Any, endpoint: str) -> list[Any]:
    if not isinstance(body, dict) or not isinstance(body.get("watch"), list):
        raise ZohoBadResponse("the answer has no watch list", endpoint=endpoint)
    return list(body["watch"])
