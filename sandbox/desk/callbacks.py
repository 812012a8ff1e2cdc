"""Desk webhook callbacks (docs/zoho.md section 4): events that happen together go to every
enabled webhook subscribed to them as one POST of a JSON array,

    [{"eventType", "payload", ["prevState"], "eventTime", "orgId"}, ...]

with an `X-ZDesk-JWT` header (see jwt_keys). `payload` is the record's whole current state;
`prevState` is sent only when the subscription asks for it (`includePrevState`) and the
change says what the record was. A subscription's options filter what it hears:
`departmentIds` (or `departmentId`) against the payload's `departmentId`, `fields` against
the fields an update changed, `direction` of `Ticket_Thread_Add`; a change made by the
source named in `ignoreSourceId` is not sent. A webhook that answers 410 is deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sandbox.delivery.deliverer import Delivery
from sandbox.desk.store import DeskOrg, Webhook
from sandbox.state import SandboxState

ACTION_OF = {"insert": "Add", "update": "Update", "delete": "Delete"}


@dataclass
class DeskChange:
    event_type: str  # Ticket_Update, Ticket_Thread_Add, ...
    records: list[dict[str, Any]]  # {"id", "values": {...}, "prev": {...} (updates)}
    fields: list[str] = field(default_factory=list)  # changed fields; default: from prev
    source_id: str | None = None

    def changed_fields(self, record: dict[str, Any]) -> set[str]:
        if self.fields:
            return set(self.fields)
        values, prev = record.get("values") or {}, record.get("prev")
        if prev is None:
            return set(values)
        return {k for k in set(values) | set(prev) if values.get(k) != prev.get(k)}


def _wanted(options: Any, change: DeskChange, record: dict[str, Any]) -> bool:
    if not isinstance(options, dict):
        return True
    payload = record.get("values") or {}
    departments = options.get("departmentIds") or (
        [options["departmentId"]] if options.get("departmentId") else []
    )
    if departments and str(payload.get("departmentId")) not in {str(d) for d in departments}:
        return False
    watched = options.get("fields") or []
    if watched and change.event_type.endswith("_Update"):
        if not set(watched) & change.changed_fields(record):
            return False
    direction = options.get("direction")
    return not (direction and payload.get("direction") not in (None, direction))


def _events(
    state: SandboxState, org: DeskOrg, hook: Webhook, change: DeskChange
) -> list[dict[str, Any]]:
    options = (hook.get("subscriptions") or {}).get(change.event_type)
    with_prev = isinstance(options, dict) and options.get("includePrevState") is True
    event_time = str(int(state.clock.now() * 1000))
    events = []
    for record in change.records:
        if not _wanted(options, change, record):
            continue
        payload = {"id": str(record["id"]), **(record.get("values") or {})}
        event: dict[str, Any] = {"eventType": change.event_type, "payload": payload}
        if with_prev and record.get("prev") is not None:
            event["prevState"] = {"id": str(record["id"]), **record["prev"]}
        event["eventTime"] = event_time
        event["orgId"] = org.id
        events.append(event)
    return events


def desk_deliveries(state: SandboxState, org: DeskOrg, change: DeskChange) -> list[Delivery]:
    made = []
    for hook in list(org.webhooks.values()):
        if not hook.get("isEnabled") or change.event_type not in (hook.get("subscriptions") or {}):
            continue
        if change.source_id and hook.get("ignoreSourceId") == change.source_id:
            continue
        events = _events(state, org, hook, change)
        if not events:
            continue
        webhook_id = str(hook["id"])

        def gone(status: int | None, webhook_id: str = webhook_id) -> None:
            # Desk drops a subscription whose receiver answers 410 Gone.
            if status == 410:
                org.delete_webhook(webhook_id)

        token = state.signing_key.webhook_token(org.id, webhook_id)
        made.append(
            Delivery(
                "desk",
                webhook_id,
                str(hook["url"]),
                json.dumps(events, separators=(",", ":")).encode(),
                state.config.desk_delivery_timeout_seconds,
                headers={"X-ZDesk-JWT": token},
                on_status=gone,
            )
        )
    return made
