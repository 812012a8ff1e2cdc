"""CRM under `/crm/v8`: instant notifications (`actions/watch`); users and org in crm_org."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox import crm_deleted, crm_org, crm_records, demo
from sandbox.crm_auth import authorize, param_error
from sandbox.crm_store import CrmStore, WatchItem
from sandbox.crm_validation import (
    WatchError,
    WatchRequest,
    new_item,
    one_hour_from_now,
    parse_watch,
)
from sandbox.errors import crm_error
from sandbox.http import BadJson, json_response, read_json, record_of, state_of
from sandbox.state import SandboxState

MAX_PER_PAGE = 200
MAX_WRITE_ITEMS = 50
MAX_CHANNEL_IDS = 512  # characters of DELETE's channel_ids (the spec's ChannelIds)
SUBSCRIBED = "Successfully subscribed for actions-watch of the given module"
UPDATED = "Successfully updated the subscribe details"
# The spec lists this message beside the others; it is the one left for _delete_events.
EVENTS_REMOVED = "Successfully removed the subscribe details"
UNSUBSCRIBED = "Successfully un-subscribed from actions-watch"
NOTIFICATIONS = "ZohoCRM.notifications"
OPERATION = {
    "GET": "READ",
    "POST": "CREATE",
    "PUT": "UPDATE",
    "PATCH": "UPDATE",
    "DELETE": "DELETE",
}


def _positive_int(request: web.Request, name: str, default: int) -> int | None:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        return None
    return int(text)


# ---- actions/watch -------------------------------------------------------------------


async def get_watch(request: web.Request) -> web.Response:
    access = authorize(request, NOTIFICATIONS, "READ")
    if isinstance(access, web.Response):
        return access
    page = _positive_int(request, "page", 1)
    if page is None:
        return param_error("page")
    per_page = _positive_int(request, "per_page", MAX_PER_PAGE)
    if per_page is None or per_page > MAX_PER_PAGE:
        return param_error("per_page", maximum_length=MAX_PER_PAGE)
    module = request.query.get("module")
    if module is not None and module not in demo.CRM_MODULES:
        return crm_error(
            400,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
            {"param_name": "module"},
        )
    channel_id = request.query.get("channel_id")
    if channel_id is not None and not channel_id.isdigit():
        return param_error("channel_id")
    store = access.user.crm
    store.expire(state_of(request).clock.now())
    body = store.page_body(module, channel_id, page, per_page)
    if body is None:
        return web.Response(status=204)
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def _watch_body(request: web.Request) -> list[Any] | web.Response:
    try:
        body = await read_json(request)
    except BadJson:
        return crm_error(400, "INVALID_DATA", "body is not a valid JSON")
    if not isinstance(body, dict):
        return crm_error(400, "INVALID_DATA", "invalid data", {"json_path": "$"})
    if body.get("watch") is None:
        return crm_error(
            400,
            "MANDATORY_NOT_FOUND",
            "required field not found",
            {"api_name": "watch", "json_path": "$.watch"},
        )
    items = body["watch"]
    if not isinstance(items, list) or not items:
        return crm_error(
            400, "INVALID_DATA", "invalid data", {"api_name": "watch", "json_path": "$.watch"}
        )
    if len(items) > MAX_WRITE_ITEMS:
        return crm_error(
            400,
            "INVALID_DATA",
            f"at most {MAX_WRITE_ITEMS} items per request",
            {"api_name": "watch", "json_path": "$.watch", "maximum_length": MAX_WRITE_ITEMS},
        )
    return items


def _summary(items: list[WatchItem]) -> dict[str, Any]:
    return {
        "events": [
            {
                "channel_expiry": it["channel_expiry"],
                "resource_uri": it["resource_uri"],
                "resource_id": it["resource_id"],
                "resource_name": it["resource_name"],
                "channel_id": it["channel_id"],
            }
            for it in items
        ]
    }


def _success(message: str, items: list[WatchItem]) -> dict[str, Any]:
    return {"code": "SUCCESS", "details": _summary(items), "message": message, "status": "success"}


def _not_subscribed(path: str) -> WatchError:
    return WatchError(
        "INVALID_DATA",
        "the given channel_id is not subscribed",
        {"api_name": "channel_id", "json_path": path},
    )


def _apply_post(
    state: SandboxState, store: CrmStore, req: WatchRequest, path: str
) -> dict[str, Any]:
    made = [new_item(state, req, m, ev) for m, ev in req.events_by_module.items()]
    for item in made:
        store.put(item)
    return _success(SUBSCRIBED, made)


def _expiry_without_one(state: SandboxState, current: dict[str, WatchItem]) -> str | None:
    """The expiry a PUT/PATCH without channel_expiry leaves: one hour from now by default
    (which can move it earlier), or the current one with `crm_write_without_expiry=keep`."""
    if state.config.crm_write_without_expiry == "keep" and current:
        return str(next(iter(current.values()))["channel_expiry"])
    return one_hour_from_now(state)


def _apply_put(
    state: SandboxState, store: CrmStore, req: WatchRequest, path: str
) -> dict[str, Any]:
    if "channel_expiry" not in req.attrs:
        req.attrs["channel_expiry"] = _expiry_without_one(state, store.channel(req.channel_id))
    store.remove_channel(req.channel_id)
    made = [new_item(state, req, m, ev) for m, ev in req.events_by_module.items()]
    for item in made:
        store.put(item)
    # The spec's PUT example answers with the subscribe message.
    return _success(SUBSCRIBED, made)


def _apply_patch(
    state: SandboxState, store: CrmStore, req: WatchRequest, path: str
) -> dict[str, Any]:
    current = store.channel(req.channel_id)
    if not current:
        raise _not_subscribed(f"{path}.channel_id")
    if "channel_expiry" not in req.attrs:
        req.attrs["channel_expiry"] = _expiry_without_one(state, current)
    template = next(iter(current.values()))
    if req.delete_events:
        for module, events in req.events_by_module.items():
            item = current.get(module)
            if item is None:
                continue
            remaining = [e for e in item["events"] if e not in events]
            if remaining:
                item["events"] = remaining
            else:
                store.remove(req.channel_id, module)
        message = EVENTS_REMOVED
    else:
        for module, events in req.events_by_module.items():
            item = current.get(module)
            if item is None:
                base = WatchRequest(req.channel_id, attrs={**template, **req.attrs})
                store.put(new_item(state, base, module, events))
            else:
                item["events"] = item["events"] + [e for e in events if e not in item["events"]]
        message = UPDATED
    for item in store.channel(req.channel_id).values():
        item.update(req.attrs)
        store.set_expiry(item)
    store.touch()  # items changed in place
    return _success(message, list(store.channel(req.channel_id).values()))


APPLY = {"POST": _apply_post, "PUT": _apply_put, "PATCH": _apply_patch}


def _multi_status(results: list[dict[str, Any]], ok_status: int) -> int:
    ok = sum(1 for r in results if r["status"] == "success")
    if ok == len(results):
        return ok_status
    return 207 if ok else 400


async def write_watch(request: web.Request) -> web.Response:
    access = authorize(request, NOTIFICATIONS, OPERATION[request.method])
    if isinstance(access, web.Response):
        return access
    items = await _watch_body(request)
    if isinstance(items, web.Response):
        return items
    state = state_of(request)
    record = record_of(request)
    if record is not None:
        record.channel_ids = [str(raw.get("channel_id")) for raw in items if isinstance(raw, dict)]
    access.user.crm.expire(state.clock.now())
    apply = APPLY[request.method]
    results = []
    for i, raw in enumerate(items):
        path = f"$.watch[{i}]"
        try:
            req = parse_watch(state, raw, path, request.method)
            results.append(apply(state, access.user.crm, req, path))
        except WatchError as exc:
            results.append(exc.as_json())
    status = _multi_status(results, 201 if request.method == "POST" else 200)
    return json_response({"watch": results}, status=status)


async def delete_watch(request: web.Request) -> web.Response:
    access = authorize(request, NOTIFICATIONS, "DELETE")
    if isinstance(access, web.Response):
        return access
    raw = request.query.get("channel_ids")
    if raw is None or not raw.strip():
        return crm_error(
            400,
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            {"param_name": "channel_ids", "param": "channel_ids"},
        )
    if len(raw) > MAX_CHANNEL_IDS:
        return param_error("channel_ids", maximum_length=MAX_CHANNEL_IDS)
    store = access.user.crm
    store.expire(state_of(request).clock.now())
    results: list[dict[str, Any]] = []
    for channel_id in [c.strip() for c in raw.split(",") if c.strip()]:
        removed = store.remove_channel(channel_id) if channel_id.isdigit() else []
        # One result per module the channel covered (the spec's example).
        results.extend(
            {
                "code": "SUCCESS",
                "details": {
                    "resource_uri": item["resource_uri"],
                    "resource_id": item["resource_id"],
                    "channel_id": item["channel_id"],
                },
                "message": UNSUBSCRIBED,
                "status": "success",
            }
            for item in removed
        )
        if not removed:
            results.append(
                WatchError(
                    "NOT_SUBSCRIBED",
                    "the given channel_id is not subscribed",
                    {"channel_id": channel_id},
                ).as_json()
            )
    return json_response({"watch": results}, status=_multi_status(results, 200))


async def crm_not_found(request: web.Request) -> web.Response:
    return crm_error(
        404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
    )


def add_routes(app: web.Application) -> None:
    watch = app.router.add_resource("/crm/v8/actions/watch", name="crm.watch")
    watch.add_route("GET", get_watch)
    watch.add_route("POST", write_watch)
    watch.add_route("PUT", write_watch)
    watch.add_route("PATCH", write_watch)
    watch.add_route("DELETE", delete_watch)
    users = app.router.add_resource("/crm/v8/users", name="crm.users")
    users.add_route("GET", crm_org.get_users)
    org = app.router.add_resource("/crm/v8/org", name="crm.org")
    org.add_route("GET", crm_org.get_org)
    # After the fixed paths above: {module} would match them too.
    records = app.router.add_resource("/crm/v8/{module}", name="crm.records")
    records.add_route("GET", crm_records.get_records)
    deleted = app.router.add_resource("/crm/v8/{module}/deleted", name="crm.deleted")
    deleted.add_route("GET", crm_deleted.get_deleted)
    # Registered last so the routes above win; wrong methods on them land here too.
    other = app.router.add_resource("/crm/{tail:.*}", name="crm.unknown")
    other.add_route("*", crm_not_found)
