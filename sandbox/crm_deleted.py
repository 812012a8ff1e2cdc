"""CRM deleted records `GET /crm/v8/{module}/deleted` (zoho/crm-oas getDeletedRecords).

`type` all (default) / recycle / permanent, `page`, `per_page` (at most 200), header
`If-Modified-Since` (against `deleted_time`); no page token. Ids only, no field values. The
example lists recycle-bin entries first, then permanent ones, each newest first; permanent
entries have null `display_name`, `deleted_by` and `created_by` (the example; the schema
marks them required objects: `crm_deleted_permanent_users="objects"` fills them). Errors
come inside `data`, as the examples show.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox import demo
from sandbox.crm_auth import authorize_module
from sandbox.crm_records import MAX_PER_PAGE, since_of
from sandbox.http import json_response, state_of
from sandbox.record_set import Deleted
from sandbox.records import DISPLAY_FIELD, crm_time, deleted_entries

TYPES = ("all", "recycle", "permanent")


def _error(code: str, message: str, details: dict[str, Any]) -> web.Response:
    return json_response(
        {"data": [{"code": code, "details": details, "message": message, "status": "error"}]},
        status=400,
    )


def _pattern(name: str) -> web.Response:
    return _error(
        "PATTERN_NOT_MATCHED",
        "Please check whether the input values are correct",
        {"param_name": name},
    )


def _number(text: str | None, default: int) -> int | None:
    if text is None:
        return default
    return int(text) if text.isdigit() and int(text) >= 1 else None


def _who(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {"name": value.get("name"), "id": value.get("id")}


def _entry(
    module: str, entry: Deleted, actor: dict[str, str], offset: int, users: bool
) -> dict[str, Any]:
    data = entry.data
    show = users or not entry.permanent
    name = data.get(DISPLAY_FIELD.get(module, "Name")) if show else None
    return {
        "deleted_by": _who(actor) if show else None,
        "id": str(entry.id),
        "display_name": name,
        "type": "permanent" if entry.permanent else "recycle",
        "created_by": (_who(data.get("Created_By")) or _who(actor)) if show else None,
        "deleted_time": crm_time(entry.at, offset),
    }


async def get_deleted(request: web.Request) -> web.Response:
    module = request.match_info["module"]
    access = authorize_module(request, module)
    if isinstance(access, web.Response):
        return access
    if module not in demo.CRM_MODULES:
        return _error(
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            {"resource_path_index": 0},
        )
    kind = request.query.get("type", "all")
    if kind not in TYPES:
        return _pattern("type")
    page = _number(request.query.get("page"), 1)
    if page is None:
        return _pattern("page")
    per_page = _number(request.query.get("per_page"), MAX_PER_PAGE)
    if per_page is None or per_page > MAX_PER_PAGE:
        return _pattern("per_page")
    state = state_of(request)
    since = since_of(request, state.config.crm_if_modified_since == "inclusive")
    if isinstance(since, web.Response):
        return since
    org = state.records.crm_org(access.user)
    entries = [
        e
        for e in deleted_entries(org.module(module))
        if (kind == "all" or e.permanent == (kind == "permanent"))
        and (since is None or e.at >= since)
    ]
    start = (page - 1) * per_page
    chunk = entries[start : start + per_page]
    if not chunk:
        return web.Response(status=204)
    users = state.config.crm_deleted_permanent_users == "objects"
    data = [_entry(module, e, org.actor, org.offset_minutes, users) for e in chunk]
    info = {
        "per_page": per_page,
        "count": len(data),
        "page": page,
        "more_records": start + per_page < len(entries),
    }
    return json_response({"data": data, "info": info})
