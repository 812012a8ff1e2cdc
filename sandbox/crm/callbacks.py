"""CRM instant-notification callbacks (docs/zoho.md section 4): a change to records of one module
becomes one POST per live channel item whose events match, to its `notify_url`:

    {"server_time", "query_params", "module", "resource_uri", "ids", "affected_fields",
     ["affected_values"], "operation", "channel_id", "token"}

Records changed together share one callback (`ids` holds them all). A channel whose
`notification_condition` names fields of the module hears of updates only when those
fields changed (`or`: any of them, `and`: all). Changes to records related to another
module's records (`related`) call that module's channels with `notify_on_related_action`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sandbox.crm.conditions import condition_fields
from sandbox.crm.store import WatchItem
from sandbox.delivery.deliverer import Delivery
from sandbox.state import SandboxState, User

# Callback operation -> the event suffix a channel subscribes to.
EVENT_OF = {"insert": "create", "update": "edit", "delete": "delete"}


@dataclass
class CrmChange:
    module: str
    operation: str  # insert, update, delete
    records: list[dict[str, Any]]  # {"id": str, "values": {field: value}}
    fields: list[str] = field(default_factory=list)  # affected fields; default: values' keys
    related: list[dict[str, Any]] = field(default_factory=list)  # {"module", "ids"}

    def affected_fields(self) -> list[str]:
        if self.operation != "update":
            return []
        if self.fields:
            return list(self.fields)
        names: dict[str, None] = {}
        for record in self.records:
            names.update(dict.fromkeys(record.get("values") or {}))
        return list(names)


def _subscribed(item: WatchItem, module: str, operation: str) -> bool:
    events = item["events"]
    return f"{module}.{EVENT_OF[operation]}" in events or f"{module}.all" in events


def _condition_allows(item: WatchItem, module: str, operation: str, changed: set[str]) -> bool:
    if operation != "update":
        return True
    operator, watched = condition_fields(item.get("notification_condition"), module)
    if not watched:
        return True
    return watched <= changed if operator == "and" else bool(watched & changed)


def _body(
    state: SandboxState,
    item: WatchItem,
    *,
    module: str,
    operation: str,
    ids: list[str],
    affected: list[str],
    values: list[dict[str, Any]],
) -> bytes:
    query = dict(parse_qsl(urlsplit(item["notify_url"]).query, keep_blank_values=True))
    shaped: list[Any] = list(affected)
    if affected and state.config.crm_affected_fields_shape == "by_record":
        shaped = [{record_id: list(affected)} for record_id in ids]
    body: dict[str, Any] = {
        "server_time": int(state.clock.now() * 1000),
        "query_params": query,
        "module": module,
        "resource_uri": item["resource_uri"],
        "ids": ids,
        "affected_fields": shaped,
    }
    if item.get("return_affected_field_values"):
        body["affected_values"] = values
    body["operation"] = operation
    body["channel_id"] = item["channel_id"]
    if item.get("token") is not None:
        body["token"] = item["token"]
    return json.dumps(body, separators=(",", ":")).encode()


def crm_deliveries(state: SandboxState, user: User, change: CrmChange) -> list[Delivery]:
    store = user.crm
    store.expire(state.clock.now())
    timeout = state.config.crm_delivery_timeout_seconds
    ids = [str(r["id"]) for r in change.records]
    affected = change.affected_fields()
    changed = set(affected)
    values = [
        {"record_id": str(r["id"]), "values": dict(r.get("values") or {})} for r in change.records
    ]
    made = []
    for item in store.query(change.module):
        if not _subscribed(item, change.module, change.operation):
            continue
        if not _condition_allows(item, change.module, change.operation, changed):
            continue
        body = _body(
            state,
            item,
            module=change.module,
            operation=change.operation,
            ids=ids,
            affected=affected,
            values=values,
        )
        made.append(Delivery("crm", item["channel_id"], item["notify_url"], body, timeout))
    for related in change.related:
        module, related_ids = related["module"], [str(i) for i in related["ids"]]
        for item in store.query(module):
            if not item.get("notify_on_related_action") or not _subscribed(item, module, "update"):
                continue
            body = _body(
                state,
                item,
                module=module,
                operation="update",
                ids=related_ids,
                affected=[],
                values=[{"record_id": i, "values": {}} for i in related_ids],
            )
            made.append(Delivery("crm", item["channel_id"], item["notify_url"], body, timeout))
    return made
