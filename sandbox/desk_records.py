"""Desk reads of tickets and contacts (zoho/zohodesk-oas v1.0 Search.json, Ticket.json).

`GET /api/v1/tickets/search` and `/api/v1/contacts/search`: `modifiedTimeRange` /
`createdTimeRange` (`FROM,TO` as `yyyy-MM-ddTHH:mm:ss.SSSZ`), `sortBy` modifiedTime /
createdTime (`-` descending; `relevance`, the default, as -modifiedTime), `limit` 1-100
(default 10), `from` 0-999, `departmentId`, `status`, `id`; answers `{"data", "count"}` (count:
the records in `data`, as the examples), 204 when nothing matches, 422 INVALID_DATA for a bad
parameter. Scopes: the module's READ scope and `Desk.search.READ` (the spec lists both).
Trashed records are not found by search.

`GET /api/v1/tickets/{id}`: the ticket; a trashed one as it was with `isTrashed: true`
(`desk_trashed_ticket="not_found"`: 404); deleted for good or unknown: 404 URL_NOT_FOUND.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from datetime import datetime
from typing import Any

from aiohttp import web

from sandbox.desk import _authorize, _org
from sandbox.errors import desk_error, desk_invalid
from sandbox.http import json_response, state_of
from sandbox.record_set import Key, RecordSet

MAX_LIMIT = 100
MAX_FROM = 999
SORTS = {"modifiedTime": "modified", "createdTime": "created"}
DESK_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z$")
SCOPE = {"tickets": "Desk.tickets", "contacts": "Desk.contacts"}


def _not_found() -> web.Response:
    return desk_error(404, "URL_NOT_FOUND", "The URL you have requested could not be found.")


def _millis(text: str) -> int | None:
    if not DESK_TIME.match(text):
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def _range(query: Any, name: str) -> tuple[int, int] | web.Response | None:
    raw = query.get(name)
    if raw is None:
        return None
    parts = raw.split(",")
    bounds = [_millis(p.strip()) for p in parts] if len(parts) == 2 else []
    if len(bounds) != 2 or bounds[0] is None or bounds[1] is None or bounds[1] < bounds[0]:
        return desk_invalid(name, "invalid", f"{name} must be FROM,TO as yyyy-MM-ddTHH:mm:ss.SSSZ")
    return bounds[0], bounds[1]


def _bounded(query: Any, name: str, default: int, low: int, high: int) -> int | web.Response:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        return desk_invalid(name, "invalid", f"{name} must be between {low} and {high}")
    return int(raw)


def _keys(records: RecordSet, sort: str, modified: tuple[int, int] | None) -> list[Key]:
    if modified is None:
        return records.view(sort)
    view = records.view("modified", modified[0])
    if sort == "modified":
        return view[: bisect_right(view, (modified[1], 1 << 62))]
    live = records.live
    return sorted(
        (live[rid].created, rid) for at, rid in view[: bisect_right(view, (modified[1], 1 << 62))]
    )


async def search(request: web.Request) -> web.Response:
    module = request.match_info.get("module") or "tickets"
    access = _authorize(request, (SCOPE[module],), "READ")
    if isinstance(access, web.Response):
        return access
    # The spec lists both scopes for search.
    searching = _authorize(request, ("Desk.search",), "READ")
    if isinstance(searching, web.Response):
        return searching
    org = _org(request, access)
    if isinstance(org, web.Response):
        return org
    query = request.query
    limit = _bounded(query, "limit", 10, 1, MAX_LIMIT)
    if isinstance(limit, web.Response):
        return limit
    start = _bounded(query, "from", 0, 0, MAX_FROM)
    if isinstance(start, web.Response):
        return start
    sort_by = query.get("sortBy", "relevance")
    desc = sort_by.startswith("-") or sort_by == "relevance"
    sort = SORTS.get(sort_by.lstrip("-"), "modified" if sort_by == "relevance" else None)
    if sort is None:
        return desk_invalid("sortBy", "invalid", f"sortBy {sort_by!r} is not supported")
    modified = _range(query, "modifiedTimeRange")
    if isinstance(modified, web.Response):
        return modified
    created = _range(query, "createdTimeRange")
    if isinstance(created, web.Response):
        return created
    records = state_of(request).records.desk_org(org.id).modules[module]
    keys = _keys(records, sort, modified)
    if created is not None:
        lo, hi = created
        keys = [k for k in keys if lo <= records.live[k[1]].created <= hi]
    filters = {
        name: query[name].split(",") for name in ("departmentId", "status", "id") if name in query
    }
    if filters:
        keys = [k for k in keys if _matches(records.live[k[1]].data, filters)]
    ordered = keys[::-1] if desc else keys
    chunk = ordered[start : start + limit]
    if not chunk:
        return web.Response(status=204)
    data = [records.live[record_id].data for _, record_id in chunk]
    return json_response({"data": data, "count": len(data)})


def _matches(data: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    return all(str(data.get(name)) in wanted for name, wanted in filters.items())


async def get_ticket(request: web.Request) -> web.Response:
    access = _authorize(request, ("Desk.tickets",), "READ")
    if isinstance(access, web.Response):
        return access
    org = _org(request, access)
    if isinstance(org, web.Response):
        return org
    raw = request.match_info["ticket_id"]
    if not raw.isdigit():
        return _not_found()
    state = state_of(request)
    tickets = state.records.desk_org(org.id).modules["tickets"]
    record = tickets.live.get(int(raw))
    if record is not None:
        return json_response(record.data)
    entry = tickets.deleted.get(int(raw))
    if entry is None or entry.permanent or state.config.desk_trashed_ticket == "not_found":
        return _not_found()
    return json_response(entry.data)


def add_routes(app: web.Application) -> None:
    tickets = app.router.add_resource("/api/v1/tickets/search", name="desk.search")
    tickets.add_route("GET", search)
    contacts = app.router.add_resource("/api/v1/{module:contacts}/search", name="desk.search:c")
    contacts.add_route("GET", search)
    one = app.router.add_resource("/api/v1/tickets/{ticket_id}", name="desk.tickets")
    one.add_route("GET", get_ticket)
