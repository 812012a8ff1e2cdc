"""Control calls over Zoho's records and API credits (bodies in sandbox/README.md):

- `POST /_sandbox/changes/bulk`: many changes at given sandbox times, applied to the records
  with one re-index, their callbacks queued (not awaited).
- `GET /_sandbox/records`: what a module holds (counts, and the records with `full=1`).
- `GET /_sandbox/credits`, `POST /_sandbox/credits`: API credits per org and per call kind;
  an org's edition, users, allowance and calls in flight.
"""

from __future__ import annotations

import random
import time
from typing import Any

from aiohttp import web

from sandbox import demo
from sandbox.control_args import ControlError, body_of, get
from sandbox.control_events import OPERATIONS, make_deliveries
from sandbox.credits import CreditsError
from sandbox.http import json_response, state_of
from sandbox.record_set import RecordSet
from sandbox.records import DESK_MODULES
from sandbox.state import SandboxState

MAX_BULK = 200_000
MIX = (("insert", 0.2), ("update", 0.7), ("delete", 0.1))
DESK_EVENT_ENTITY = {"tickets": "Ticket", "contacts": "Contact"}


def _record_set(state: SandboxState, body: dict[str, Any]) -> RecordSet:
    app, module = get(body, "app", str), get(body, "module", str)
    if app == "crm":
        if module not in demo.CRM_MODULES:
            raise ControlError(f"unknown CRM module {module!r}")
        user = state.users.get(get(body, "user", str, demo.DEMO_USER))
        if user is None:
            raise ControlError("unknown user")
        return state.records.crm_org(user).module(module)
    if app == "desk":
        if module not in DESK_MODULES:
            raise ControlError(f"Desk records are {DESK_MODULES}")
        org_id = get(body, "org_id", str, demo.DEMO_DESK_ORG_ID)
        if org_id not in state.desk_orgs:
            raise ControlError("unknown org")
        return state.records.desk_org(org_id).modules[module]
    raise ControlError("'app' must be 'crm' or 'desk'")


def _generated(records: RecordSet, spec: dict[str, Any], now: float) -> list[dict[str, Any]]:
    """`count` changes spread evenly from `start` to `end` (sandbox times, default now):
    inserts make new records, updates and deletes pick live ones (from `seed`)."""
    count = get(spec, "count", int)
    if not 0 < count <= MAX_BULK:
        raise ControlError(f"'count' must be 1..{MAX_BULK}")
    operation = get(spec, "operation", str, "update")
    if operation not in (*OPERATIONS, "mix"):
        raise ControlError(f"'operation' must be one of {(*OPERATIONS, 'mix')}")
    start = float(get(spec, "start", (int, float), now))
    end = float(get(spec, "end", (int, float), start))
    if end < start:
        raise ControlError("'end' must not be before 'start'")
    rng = random.Random(get(spec, "seed", int, 0))
    live = list(records.live)
    step = (end - start) / max(1, count - 1)
    changes = []
    for i in range(count):
        op = operation
        if op == "mix":
            draw, op = rng.random(), "update"
            for name, share in MIX:
                if draw < share:
                    op = name
                    break
                draw -= share
        if op != "insert" and not live:
            op = "insert"
        if op == "insert":
            record: dict[str, Any] = {"values": {}}
        else:
            at = rng.randrange(len(live))
            record = {"id": str(live[at]), "values": {}}
            if op == "delete":
                live[at] = live[-1]
                live.pop()
            else:
                record["values"] = {"Description": f"bulk change {i}"}
        changes.append({"operation": op, "records": [record], "at": start + i * step})
    return changes


async def bulk_changes(request: web.Request) -> web.Response:
    body = await body_of(request)
    state = state_of(request)
    records = _record_set(state, body)
    changes = get(body, "changes", list, [])
    if "generate" in body:
        changes = changes + _generated(records, get(body, "generate", dict), state.clock.now())
    if not changes or len(changes) > MAX_BULK:
        raise ControlError(f"give 1..{MAX_BULK} 'changes' or 'generate'")
    callbacks = get(body, "callbacks", bool, True)
    base: dict[str, Any] = {k: body[k] for k in ("app", "module", "user", "org_id") if k in body}
    if body["app"] == "desk":
        base["module"] = DESK_EVENT_ENTITY[body["module"]]
    started = time.perf_counter()
    queued = 0
    with records.bulk():
        for change in changes:
            if not isinstance(change, dict):
                raise ControlError("each change is {'operation', 'records', 'at', ...}")
            made = make_deliveries(state, {**change, **base})
            if callbacks:
                for delivery in made:
                    state.deliveries.submit(delivery)
                queued += len(made)
    elapsed_ms = (time.perf_counter() - started) * 1000
    return json_response(
        {"applied": len(changes), "queued": queued, "elapsed_ms": round(elapsed_ms, 3)}
    )


async def records_view(request: web.Request) -> web.Response:
    query = dict(request.query)
    records = _record_set(state_of(request), query)
    answer: dict[str, Any] = {"live": len(records.live), "deleted": len(records.deleted)}
    if query.get("full") in ("1", "true"):
        answer["records"] = records.records()
        answer["deleted_records"] = [
            {"id": str(e.id), "at": e.at, "permanent": e.permanent, "data": e.data}
            for e in records.deleted.values()
        ]
    return json_response(answer)


def _credits_key(state: SandboxState, app: str, org: str | None) -> tuple[str, str]:
    if app == "crm":
        user = org or demo.DEMO_USER
        if user not in state.users:
            raise ControlError("unknown user (a CRM org is its user)")
        return app, user
    if app == "desk":
        org_id = org or demo.DEMO_DESK_ORG_ID
        if org_id not in state.desk_orgs:
            raise ControlError("unknown Desk org")
        return app, org_id
    raise ControlError("'app' must be 'crm' or 'desk'")


async def credits(request: web.Request) -> web.Response:
    state = state_of(request)
    now = state.clock.now()
    app = request.query.get("app")
    if app is None:
        return json_response(
            {
                "orgs": [
                    {"app": a, "org": k, **o.as_json(now)}
                    for (a, k), o in state.credits.orgs.items()
                ]
            }
        )
    key = _credits_key(state, app, request.query.get("org"))
    org = state.credits.org(*key, state.config.credits_default_edition)
    return json_response({"app": key[0], "org": key[1], **org.as_json(now)})


async def set_credits(request: web.Request) -> web.Response:
    body = await body_of(request)
    state = state_of(request)
    key = _credits_key(state, get(body, "app", str), get(body, "org", str, None))
    org = state.credits.org(*key, state.config.credits_default_edition)
    numbers = {k: body[k] for k in ("users", "allowance", "max_in_flight") if k in body}
    try:
        state.credits.configure(org, edition=get(body, "edition", str, None), **numbers)
    except CreditsError as exc:
        raise ControlError(str(exc)) from None
    if get(body, "reset_counters", bool, False):
        fresh = type(org)(
            edition=org.edition,
            users=org.users,
            allowance=org.allowance,
            max_in_flight=org.max_in_flight,
        )
        state.credits.orgs[key] = org = fresh
    return json_response({"app": key[0], "org": key[1], **org.as_json(state.clock.now())})


def add_routes(app: web.Application, prefix: str) -> None:
    r = app.router
    r.add_post(prefix + "changes/bulk", bulk_changes)
    r.add_get(prefix + "records", records_view)
    r.add_get(prefix + "credits", credits)
    r.add_post(prefix + "credits", set_credits)
