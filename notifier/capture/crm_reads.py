"""Zoho CRM's read APIs as change capture uses them (docs/zoho.md, "Reading changes
back"): COQL keyed on (Modified_Time, id), Get Records with If-Modified-Since, deleted
records, the org and a module's fields. One call each, no loops: crm_window.py pages.

Every call says what it cost in API credits (spent before it is sent, capture/credits.py)
and hands back Zoho's X-API-CREDITS-REMAINING when sent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notifier.broker_client import BrokerToken
from notifier.zoho_http import ZohoCall, ZohoHttp
from servicekit import scopes
from servicekit.deadline import Deadline
from servicekit.errors import ZohoBadResponse

BASE = "/crm/v8"
COQL_MAX_ROWS = 2000
RECORDS_PER_PAGE = 200
# The fields every read asks for: the key and what tells a creation from an edit.
KEY_FIELDS = ("id", "Created_Time", "Modified_Time")
MAX_FIELDS = 50


def coql_credits(limit: int) -> int:
    """Zoho's price of one COQL call by its LIMIT (docs/zoho.md section 6)."""
    return 1 if limit <= 200 else 2 if limit <= 1000 else 3


@dataclass(frozen=True)
class Batch:
    rows: list[dict[str, Any]]
    more: bool
    remaining: int | None  # X-API-CREDITS-REMAINING, when Zoho sent it
    next_page_token: str | None = None


def zoho_time(value: datetime) -> str:
    """A time as CRM takes it in COQL and If-Modified-Since: ISO-8601, whole seconds,
    with an offset."""
    return value.astimezone(UTC).replace(microsecond=0).isoformat()


def parse_time(value: Any) -> datetime | None:
    """CRM's record times (`2023-10-15T10:30:00+05:30`); None when absent or unreadable
    (no offset is unreadable: whose clock would it be?)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _record_id(value: Any) -> str:
    """COQL compares ids as numbers: a record id must be digits to be put in a query."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) > 64:
        raise ValueError("not a CRM record id")
    return text


def _rows(body: Any, endpoint: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if body is None:  # 204 / 304: nothing matches
        return [], {}
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ZohoBadResponse("the answer has no data list", endpoint=endpoint)
    info = body.get("info")
    rows = [row for row in body["data"] if isinstance(row, dict)]
    return rows, info if isinstance(info, dict) else {}


class CrmReads:
    """Calls one CRM API domain (the one the broker returned with the token)."""

    def __init__(self, http: ZohoHttp) -> None:
        self._http = http

    async def org_id(self, grant: BrokerToken, deadline: Deadline) -> str | None:
        """The CRM org's id (`GET /org`), which keys the credit budget; None when the
        answer names none."""
        call = ZohoCall(
            app="crm", endpoint="crm.org", method="GET", url=grant.api_domain + BASE + "/org",
            scope=scopes.CRM_ORG_READ,
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        orgs = reply.body.get("org") if isinstance(reply.body, dict) else None
        if isinstance(orgs, list) and orgs and isinstance(orgs[0], dict):
            org = orgs[0].get("id") or orgs[0].get("zgid")
            if isinstance(org, str | int) and not isinstance(org, bool) and str(org):
                return str(org)[:200]
        return None

    async def field_names(self, grant: BrokerToken, module: str, deadline: Deadline) -> list[str]:
        """The module's field API names (`GET /settings/fields`), for reading values."""
        call = ZohoCall(
            app="crm", endpoint="crm.fields", method="GET",
            url=grant.api_domain + BASE + "/settings/fields", scope=scopes.CRM_SETTINGS_READ,
            params={"module": module},
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        fields = reply.body.get("fields") if isinstance(reply.body, dict) else None
        if not isinstance(fields, list):
            raise ZohoBadResponse("the answer has no fields list", endpoint=call.endpoint)
        return [
            f["api_name"] for f in fields
            if isinstance(f, dict) and isinstance(f.get("api_name"), str)
        ]

    async def coql(
        self,
        grant: BrokerToken,
        module: str,
        fields: Sequence[str],
        *,
        since: datetime,
        until: datetime,
        after_id: str | None,
        limit: int,
        deadline: Deadline,
    ) -> Batch:
        """Records with since <= Modified_Time < until, ordered by (Modified_Time, id);
        with `after_id`, only those after (since, after_id): the key moves past the last
        row read, never an OFFSET (COQL stops at 100,000 rows by offset)."""
        start, end = zoho_time(since), zoho_time(until)
        if after_id is None:
            where = f"Modified_Time >= '{start}' and Modified_Time < '{end}'"
        else:
            last = _record_id(after_id)
            where = (
                f"((Modified_Time = '{start}' and id > {last}) or Modified_Time > '{start}')"
                f" and Modified_Time < '{end}'"
            )
        query = (
            f"select {', '.join(fields)} from {module} where {where}"  # noqa: S608  # module and fields are Zoho API names checked by the caller
            f" order by Modified_Time asc, id asc limit {limit}"
        )
        call = ZohoCall(
            app="crm", endpoint="crm.coql", method="POST", url=grant.api_domain + BASE + "/coql",
            scope=scopes.CRM_COQL_READ, json_body={"select_query": query},
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        rows, info = _rows(reply.body, call.endpoint)
        return Batch(rows, bool(info.get("more_records")), reply.credits_remaining)

    async def records(
        self,
        grant: BrokerToken,
        module: str,
        fields: Sequence[str],
        *,
        since: datetime,
        page_token: str | None,
        deadline: Deadline,
    ) -> Batch:
        """Get Records modified at or after `since` (If-Modified-Since is inclusive at one
        second), oldest first; `page_token` from the previous page reaches past 2,000."""
        params = {
            "fields": ",".join(fields), "sort_by": "Modified_Time", "sort_order": "asc",
            "per_page": str(RECORDS_PER_PAGE),
        }
        if page_token:
            params["page_token"] = page_token
        call = ZohoCall(
            app="crm", endpoint="crm.records", method="GET",
            url=f"{grant.api_domain}{BASE}/{module}", scope=scopes.CRM_MODULES_READ,
            params=params, headers={"If-Modified-Since": zoho_time(since)},
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        rows, info = _rows(reply.body, call.endpoint)
        token = info.get("next_page_token")
        return Batch(
            rows, bool(info.get("more_records")), reply.credits_remaining,
            token if isinstance(token, str) and token else None,
        )

    async def deleted(
        self, grant: BrokerToken, module: str, *, since: datetime, page: int, deadline: Deadline
    ) -> Batch:
        """Records deleted at or after `since` (recycle bin and permanent): ids only."""
        call = ZohoCall(
            app="crm", endpoint="crm.deleted", method="GET",
            url=f"{grant.api_domain}{BASE}/{module}/deleted", scope=scopes.CRM_MODULES_READ,
            params={"type": "all", "per_page": str(RECORDS_PER_PAGE), "page": str(page)},
            headers={"If-Modified-Since": zoho_time(since)},
        )
        reply = await self._http.send(call, grant.access_token, deadline)
        rows, info = _rows(reply.body, call.endpoint)
        return Batch(rows, bool(info.get("more_records")), reply.credits_remaining)
