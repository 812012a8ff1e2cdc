"""CRM Get Records `GET /crm/v8/{module}` (zoho/crm-oas v8.0 record.json, getRecords).

`fields` is required (at most 50); `sort_by` id/Created_Time/Modified_Time, `sort_order`
(default id, desc: the spec example's info); `per_page` at most 200; `page` reaches only the
first 2,000 records (DISCRETE_PAGINATION_LIMIT_EXCEEDED); `page_token` (info.next_page_token)
reaches 100,000 (PAGINATION_LIMIT_EXCEEDED), expires (EXPIRED_VALUE) and is bound to the
other parameters (TOKEN_BOUND_DATA_MISMATCH); `ids` picks records; header
`If-Modified-Since`. Nothing to answer: 204 (or 304 with If-Modified-Since, when
`crm_not_modified_304` is set).
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from typing import Any

from aiohttp import web

from sandbox import demo
from sandbox.clock import parse_iso
from sandbox.crm_auth import authorize_module
from sandbox.crm_page_tokens import PageToken
from sandbox.errors import crm_error
from sandbox.http import state_of
from sandbox.record_set import Key, RecordSet
from sandbox.records import CRM_FIELDS, crm_org_key, crm_time

MAX_FIELDS = 50
MAX_PER_PAGE = 200
MAX_IDS = 100
DISCRETE_LIMIT = 2_000
SORT_BY = {"id": "id", "Created_Time": "created", "Modified_Time": "modified"}
SORT_ORDERS = ("asc", "desc")
SYSTEM_FIELDS = frozenset(
    {"id", "Owner", "Created_Time", "Modified_Time", "Created_By", "Modified_By"}
)


def invalid_module() -> web.Response:
    return crm_error(
        400,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
        {"resource_path_index": 0},
    )


def _invalid(name: str, **extra: Any) -> web.Response:
    return crm_error(400, "INVALID_DATA", "invalid data", {"param_name": name, **extra})


def _count(text: str | None, name: str, default: int, maximum: int | None) -> int | web.Response:
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        return _invalid(name)
    if maximum is not None and int(text) > maximum:
        return crm_error(
            400, "LIMIT_EXCEEDED", "limit exceeded", {"limit": maximum, "param_name": name}
        )
    return int(text)


def since_of(request: web.Request, inclusive: bool) -> int | web.Response | None:
    """If-Modified-Since as the first epoch second a record may have been modified at."""
    raw = request.headers.get("If-Modified-Since")
    if raw is None:
        return None
    at = parse_iso(raw.strip())
    if at is None:
        return _invalid("If-Modified-Since")
    # One-second resolution: "inclusive" keeps a record modified in that very second,
    # "after" starts at the next one.
    return int(at) if inclusive else int(at) + 1


def _empty(request: web.Request, since: int | None) -> web.Response:
    if since is not None and state_of(request).config.crm_not_modified_304:
        return web.Response(status=304)
    return web.Response(status=204)


def _shape(data: dict[str, Any], fields: list[str], known: frozenset[str]) -> dict[str, Any]:
    out = {"id": data["id"]}
    for name in fields:
        if name in data:
            out[name] = data[name]
        elif name in known:
            out[name] = None
    return out


def _slice(view: list[Key], desc: bool, start: int, end: int) -> list[Key]:
    """Records start..end (0-based) of the view in the asked order."""
    if not desc:
        return view[start:end]
    total = len(view)
    return view[max(0, total - end) : max(0, total - start)][::-1]


def _after(view: list[Key], desc: bool, last: Key, count: int) -> tuple[list[Key], bool]:
    """`count` keys after `last` in the asked order, and whether more follow."""
    if not desc:
        at = bisect_right(view, last)
        return view[at : at + count], at + count < len(view)
    at = bisect_left(view, last)
    return view[max(0, at - count) : at][::-1], at - count > 0


async def get_records(request: web.Request) -> web.Response:
    module = request.match_info["module"]
    access = authorize_module(request, module)
    if isinstance(access, web.Response):
        return access
    if module not in demo.CRM_MODULES:
        return invalid_module()
    state = state_of(request)
    config = state.config
    query = request.query
    raw_fields = query.get("fields")
    if raw_fields is None or not raw_fields.strip():
        return crm_error(
            400, "REQUIRED_PARAM_MISSING", "required param is missing", {"param_name": "fields"}
        )
    fields = list(dict.fromkeys(f.strip() for f in raw_fields.split(",") if f.strip()))
    if len(fields) > MAX_FIELDS:
        return crm_error(
            400, "LIMIT_EXCEEDED", "limit exceeded", {"limit": MAX_FIELDS, "param_name": "fields"}
        )
    sort_by = query.get("sort_by", "id")
    if sort_by not in SORT_BY:
        return _invalid("sort_by", supported_values=list(SORT_BY))
    sort_order = query.get("sort_order", "desc")
    if sort_order not in SORT_ORDERS:
        return _invalid("sort_order", supported_values=list(SORT_ORDERS))
    per_page = _count(query.get("per_page"), "per_page", MAX_PER_PAGE, MAX_PER_PAGE)
    if isinstance(per_page, web.Response):
        return per_page
    page = _count(query.get("page"), "page", 1, None)
    if isinstance(page, web.Response):
        return page
    since = since_of(request, config.crm_if_modified_since == "inclusive")
    if isinstance(since, web.Response):
        return since
    org_key = crm_org_key(access.user)
    org = state.records.crm_org(access.user)
    records = org.module(module)
    known = SYSTEM_FIELDS | frozenset(CRM_FIELDS.get(module, ()))
    if "ids" in query:
        return _by_ids(request, records, query["ids"], fields, known, since, sort_by, sort_order)
    binding = (
        org_key,
        module,
        tuple(sorted((k, v) for k, v in query.items() if k not in ("page", "page_token"))),
        request.headers.get("If-Modified-Since"),
    )
    desc = sort_order == "desc"
    token_limit = config.crm_page_token_record_limit
    view = records.view(SORT_BY[sort_by], since)
    now = state.clock.now()
    token_name = query.get("page_token")
    if token_name is not None:
        token = state.records.page_tokens.get(token_name)
        if token is None or token.binding != binding:
            return crm_error(
                400,
                "TOKEN_BOUND_DATA_MISMATCH",
                "The page_token given seems to be invalid or input param is added or altered "
                "or deleted",
                {"param_name": "page_token"},
            )
        if token.expires_at <= now:
            return crm_error(
                400,
                "EXPIRED_VALUE",
                "Page token expired",
                {"api_name": "page_token", "json_path": "$.query.page_token"},
            )
        if token.served >= token_limit:
            return crm_error(
                400,
                "PAGINATION_LIMIT_EXCEEDED",
                "You can only get upto 100000 records using page_token param",
                {"param_name": "page_token"},
            )
        keys, more = _after(view, desc, token.last, min(per_page, token_limit - token.served))
        served, page = token.served, token.page
    else:
        start = (page - 1) * per_page
        if start >= DISCRETE_LIMIT:
            return crm_error(
                400,
                "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                "You can only get the first 2000 records without using page_token param",
                {"limit": DISCRETE_LIMIT},
            )
        end = min(start + per_page, DISCRETE_LIMIT)
        keys, more, served = _slice(view, desc, start, end), end < len(view), start
    if not keys:
        return _empty(request, since)
    next_token = expiry = None
    if more:
        expires_at = now + config.crm_page_token_ttl_seconds
        next_token = state.records.page_tokens.mint(
            PageToken(binding, keys[-1], served + len(keys), page + 1, expires_at)
        )
        expiry = crm_time(int(expires_at), org.offset_minutes)
    live = records.live
    data = [_shape(live[record_id].data, fields, known) for _, record_id in keys]
    info = {
        "call": False,
        "per_page": per_page,
        "next_page_token": next_token,
        "count": len(data),
        "sort_by": sort_by,
        "page": page,
        "previous_page_token": None,
        "page_token_expiry": expiry,
        "sort_order": sort_order,
        "email": False,
        "more_records": more,
    }
    return _answer({"data": data, "info": info})


def _answer(body: dict[str, Any]) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type="application/json",
        charset="utf-8",
    )


def _by_ids(
    request: web.Request,
    records: RecordSet,
    raw: str,
    fields: list[str],
    known: frozenset[str],
    since: int | None,
    sort_by: str,
    sort_order: str,
) -> web.Response:
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if not ids or len(ids) > MAX_IDS or not all(i.isdigit() for i in ids):
        return _invalid("ids")
    found = [records.live[int(i)] for i in dict.fromkeys(ids) if int(i) in records.live]
    found = [r for r in found if since is None or r.modified >= since]
    if not found:
        return _empty(request, since)
    attr = {"id": "id", "Created_Time": "created", "Modified_Time": "modified"}[sort_by]
    found.sort(key=lambda r: (getattr(r, attr), r.id), reverse=sort_order == "desc")
    info = {
        "call": False,
        "per_page": MAX_PER_PAGE,
        "next_page_token": None,
        "count": len(found),
        "sort_by": sort_by,
        "page": 1,
        "previous_page_token": None,
        "page_token_expiry": None,
        "sort_order": sort_order,
        "email": False,
        "more_records": False,
    }
    return _answer({"data": [_shape(r.data, fields, known) for r in found], "info": info})
