"""Control calls that make Zoho's records change and read what the sandbox then delivered:
`POST /_sandbox/changes`, `GET /_sandbox/deliveries`, `POST /_sandbox/deliveries/faults`,
`POST /_sandbox/deliveries/clear`, `POST /_sandbox/deliveries/wait`.
See sandbox/README.md for the bodies."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from sandbox import demo
from sandbox.control_args import ControlError, body_of, get, str_list
from sandbox.crm_callbacks import CrmChange, crm_deliveries
from sandbox.delivery import Delivery
from sandbox.delivery_faults import DeliveryFaultError
from sandbox.desk_callbacks import ACTION_OF, DeskChange, desk_deliveries
from sandbox.http import json_response, state_of
from sandbox.state import SandboxState

OPERATIONS = ("insert", "update", "delete")
# Desk events that change the records the sandbox keeps (tickets, contacts).
DESK_RECORD_EVENTS = {
    f"{entity}_{action}": (module, operation)
    for entity, module in (("Ticket", "tickets"), ("Contact", "contacts"))
    for operation, action in ACTION_OF.items()
}
MAX_WAIT_SECONDS = 60.0


def _records(body: dict[str, Any], operation: str) -> list[dict[str, Any]]:
    raw = get(body, "records", list)
    if not raw:
        raise ControlError("'records' must name at least one record")
    records = []
    for one in raw:
        if isinstance(one, str | int) and not isinstance(one, bool):
            one = {"id": str(one)}
        # An insert may leave the id to the sandbox.
        id_ok = isinstance(one, dict) and (
            isinstance(one.get("id"), str | int) or (operation == "insert" and "id" not in one)
        )
        if not id_ok:
            raise ControlError("each record is an id or {'id', 'values', 'prev'}")
        for key in ("values", "prev"):
            if one.get(key) is not None and not isinstance(one[key], dict):
                raise ControlError(f"a record's {key!r} must be an object")
        records.append(one)
    return records


def make_deliveries(state: SandboxState, body: dict[str, Any]) -> list[Delivery]:
    app = get(body, "app", str)
    operation = get(body, "operation", str, "update")
    if operation not in OPERATIONS:
        raise ControlError(f"'operation' must be one of {OPERATIONS}")
    records = _records(body, operation)
    fields = str_list(body, "fields", [])
    permanent = get(body, "permanent", bool, False)
    at = float(get(body, "at", (int, float), state.clock.now()))
    if app == "crm":
        module = get(body, "module", str)
        if module not in demo.CRM_MODULES:
            raise ControlError(f"unknown CRM module {module!r}")
        related = get(body, "related", list, [])
        for entry in related:
            if (
                not isinstance(entry, dict)
                or entry.get("module") not in demo.CRM_MODULES
                or not isinstance(entry.get("ids"), list)
            ):
                raise ControlError("each 'related' entry is {'module': known module, 'ids': [...]}")
        user = state.users.get(get(body, "user", str, demo.DEMO_USER))
        if user is None:
            raise ControlError("unknown user")
        # The records change first: whoever reads them after the callback sees the change.
        records = state.records.crm_change(
            user, module, operation, records, int(at), permanent=permanent
        )
        change = CrmChange(module, operation, records, fields, related)
        return crm_deliveries(state, user, change)
    if app == "desk":
        org = state.desk_orgs.get(get(body, "org_id", str, demo.DEMO_DESK_ORG_ID))
        if org is None:
            raise ControlError("unknown org")
        event = get(body, "event", str, None)
        if event is None:
            event = f"{get(body, 'module', str)}_{ACTION_OF[operation]}"
        source = get(body, "source_id", str, None)
        held = DESK_RECORD_EVENTS.get(event)
        if held is not None:
            records = state.records.desk_change(
                org.id, held[0], held[1], records, int(at * 1000), permanent=permanent
            )
        return desk_deliveries(state, org, DeskChange(event, records, fields, source))
    raise ControlError("'app' must be 'crm' or 'desk'")


async def changes(request: web.Request) -> web.Response:
    body = await body_of(request)
    state = state_of(request)
    made = make_deliveries(state, body)
    futures = [state.deliveries.submit(d) for d in made]
    if not get(body, "wait", bool, True) or not futures:
        return json_response({"queued": len(futures), "deliveries": []})
    timeout = min(float(get(body, "timeout", (int, float), 30.0)), MAX_WAIT_SECONDS)
    done, _ = await asyncio.wait(futures, timeout=timeout)
    outcomes = [o.as_json() for f in futures if f in done for o in f.result()]
    outcomes.sort(key=lambda o: o["seq"])
    return json_response(
        {"queued": len(futures), "pending": len(futures) - len(done), "deliveries": outcomes}
    )


async def deliveries(request: web.Request) -> web.Response:
    log = state_of(request).deliveries.log
    app, subscription = request.query.get("app"), request.query.get("subscription")
    entries = [e.as_json() for e in log.select(app, subscription)]
    stats = [
        s.as_json()
        for s in log.stats.values()
        if (app is None or s.app == app)
        and (subscription is None or s.subscription == subscription)
    ]
    return json_response({"deliveries": entries, "stats": stats})


async def add_delivery_fault(request: web.Request) -> web.Response:
    body = await body_of(request)
    state = state_of(request)
    start = get(body, "start", (int, float), None)
    end = get(body, "end", (int, float), None)
    seconds = get(body, "seconds", (int, float), None)
    if seconds is not None:
        # A window from now: "the receiver is unreachable for the next N seconds".
        start = state.clock.now() if start is None else start
        end = start + seconds
    windowed = start is not None or get(body, "probability", (int, float), None) is not None
    try:
        fault = state.deliveries.faults.add(
            get(body, "kind", str),
            # A window or a probability lasts until cleared unless a count is given.
            count=get(body, "count", int, None) if "count" in body or windowed else 1,
            app=get(body, "app", str, None),
            subscription=get(body, "subscription", str, None),
            delay_ms=get(body, "delay_ms", int, 0),
            url=get(body, "url", str, None),
            retries=get(body, "retries", int, 0),
            backoff_ms=get(body, "backoff_ms", int, 0),
            probability=get(body, "probability", (int, float), None),
            seed=get(body, "seed", int, None),
            start=start,
            end=end,
        )
    except DeliveryFaultError as exc:
        raise ControlError(str(exc)) from None
    return json_response(fault.as_json())


async def clear_deliveries(request: web.Request) -> web.Response:
    deliverer = state_of(request).deliveries
    deliverer.log.clear()
    deliverer.faults.clear()
    return json_response({"ok": True})


async def wait_deliveries(request: web.Request) -> web.Response:
    body = await body_of(request)
    timeout = min(float(get(body, "timeout", (int, float), 10.0)), MAX_WAIT_SECONDS)
    idle = await state_of(request).deliveries.wait_idle(timeout)
    return json_response({"idle": idle})


async def jwks(request: web.Request) -> web.Response:
    """Desk's `/.well-known/jwks.json`: the public key of X-ZDesk-JWT."""
    return json_response(state_of(request).signing_key.jwks())


def add_routes(app: web.Application, prefix: str) -> None:
    r = app.router
    r.add_post(prefix + "changes", changes)
    r.add_get(prefix + "deliveries", deliveries)
    r.add_post(prefix + "deliveries/faults", add_delivery_fault)
    r.add_post(prefix + "deliveries/clear", clear_deliveries)
    r.add_post(prefix + "deliveries/wait", wait_deliveries)
    jwks_resource = r.add_resource("/.well-known/jwks.json", name="desk.jwks")
    jwks_resource.add_route("GET", jwks)
