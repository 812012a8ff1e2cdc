"""Zoho Desk's search as change capture uses it (docs/zoho.md section 6): tickets,
contacts and accounts whose modifiedTime lies in a range, oldest first.

A search reaches `from` 0-999 with `limit` at most 100, so one range yields at most about
1,100 results: desk_window.py cuts a window into slices that stay below that."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from notifier.broker_client import BrokerToken
from notifier.zoho_http import ZohoCall, ZohoHttp
from servicekit import scopes
from servicekit.deadline import Deadline
from servicekit.errors import ZohoBadResponse

SEARCH_LIMIT = 100
MAX_FROM = 999
# The resources a Desk subscription's events name that search can read back.
SEARCH_PATHS = {"Ticket": "tickets", "Contact": "contacts", "Account": "accounts"}


def desk_time(value: datetime) -> str:
    """yyyy-MM-ddTHH:mm:ss.SSSZ, as modifiedTimeRange takes it."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class SearchPage:
    rows: list[dict[str, Any]]
    full: bool  # as many as asked for: there may be more


class DeskReads:
    def __init__(self, http: ZohoHttp) -> None:
        self._http = http

    async def search(
        self,
        grant: BrokerToken,
        origin: str,
        org_id: str,
        resource: str,
        *,
        since: datetime,
        until: datetime,
        start: int,
        deadline: Deadline,
    ) -> SearchPage:
        """`resource` records with since <= modifiedTime < until (Desk's range is
        inclusive at the millisecond: `until` less one millisecond is sent), by
        modifiedTime ascending, from position `start`."""
        if start > MAX_FROM:
            raise ValueError(f"Desk search reaches from={MAX_FROM} at most")
        last = until - timedelta(milliseconds=1)
        call = ZohoCall(
            app="desk",
            endpoint=f"desk.{SEARCH_PATHS[resource]}.search",
            method="GET",
            url=f"{origin}/api/v1/{SEARCH_PATHS[resource]}/search",
            scope=scopes.DESK_SEARCH_READ,
            params={
                "modifiedTimeRange": f"{desk_time(since)},{desk_time(last)}",
                "sortBy": "modifiedTime",
                "from": str(start),
                "limit": str(SEARCH_LIMIT),
            },
            headers={"orgId": org_id},
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        if reply.body is None:  # 204: nothing in the range
            return SearchPage([], False)
        data = reply.body.get("data") if isinstance(reply.body, dict) else None
        if not isinstance(data, list):
            raise ZohoBadResponse("the answer has no data list", endpoint=call.endpoint)
        rows = [row for row in data if isinstance(row, dict)]
        return SearchPage(rows, len(data) >= SEARCH_LIMIT)
