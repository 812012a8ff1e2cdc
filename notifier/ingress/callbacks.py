"""Zoho's callback bodies (CRM channel POSTs, Desk webhook arrays) split into one
NotificationEvent per record, each with a dedupe key.

Zoho sends no event id, so the key is a digest of what identifies one change: the
subscription, the record, the operation and Zoho's own time of the change (CRM's
`server_time`, Desk's `eventTime`). A delivery Zoho repeats carries the same values
and so the same keys; two real changes of one record differ at least in the time."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from notifier.events.log import NewEvent
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

MAX_EVENTS_PER_DELIVERY = 1000
# Zoho's names in callbacks (insert/update) and in subscriptions (create/edit) alike.
_CRM_OPERATIONS = {
    "insert": "create", "create": "create",
    "update": "edit", "edit": "edit",
    "delete": "delete",
}


class MalformedCallback(ValueError):
    """A verified delivery we cannot read: 400, with this text (never a secret)."""


@dataclass(frozen=True)
class Subscriber:
    """Whose a delivery is: the verified subscription it arrived on."""

    subscription_id: str
    user_id: str


def _key(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _time(millis: Any) -> timestamp_pb2.Timestamp | None:
    if isinstance(millis, str) and millis.isdigit():
        millis = int(millis)
    if isinstance(millis, bool) or not isinstance(millis, int | float) or millis <= 0:
        return None
    stamp = timestamp_pb2.Timestamp()
    try:
        stamp.FromDatetime(datetime.fromtimestamp(millis / 1000, UTC))
    except (OverflowError, OSError, ValueError):
        return None
    return stamp


def _iso_time(value: Any) -> timestamp_pb2.Timestamp | None:
    """Zoho's ISO-8601 record times (CRM `Modified_Time` with an offset, Desk
    `modifiedTime` with milliseconds and Z); None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(parsed.astimezone(UTC))
    return stamp


def _struct(value: Any) -> struct_pb2.Struct | None:
    if not isinstance(value, dict) or not value:
        return None
    holder = struct_pb2.Struct()
    try:
        holder.update(value)
    except (ValueError, TypeError):
        raise MalformedCallback("a payload holds a value JSON cannot carry") from None
    return holder


def _record_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    raise MalformedCallback("a record id is not a string of at most 64 characters")


def _crm_affected(body: dict[str, Any], record_id: str) -> list[str]:
    """`affected_fields` as names, or as [{"<record id>": [names]}] (both are seen)."""
    names: list[str] = []
    for entry in body.get("affected_fields") or []:
        if isinstance(entry, str):
            names.append(entry)
        elif isinstance(entry, dict):
            fields = entry.get(record_id)
            if isinstance(fields, list):
                names.extend(f for f in fields if isinstance(f, str))
    return names


def _crm_values(body: dict[str, Any], record_id: str) -> Any:
    for entry in body.get("affected_values") or []:
        if isinstance(entry, dict) and str(entry.get("record_id")) == record_id:
            return entry.get("values")
    return None


def crm_events(subscriber: Subscriber, body: dict[str, Any]) -> list[NewEvent]:
    module = body.get("module")
    if not isinstance(module, str) or not module:
        raise MalformedCallback("module is missing")
    operation = _CRM_OPERATIONS.get(str(body.get("operation", "")).lower())
    if operation is None:
        raise MalformedCallback("operation is not insert, update or delete")
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise MalformedCallback("ids is not a list of record ids")
    if len(ids) > MAX_EVENTS_PER_DELIVERY:
        raise MalformedCallback(f"more than {MAX_EVENTS_PER_DELIVERY} records in one delivery")
    server_time = body.get("server_time")
    event_time = _time(server_time)
    when = str(server_time)
    if event_time is None:
        # No time to tell two changes apart: what the delivery says of them does.
        said = {k: v for k, v in body.items() if k not in ("token", "query_params")}
        when = json.dumps(said, sort_keys=True, default=str)
    events = []
    for raw in ids:
        record_id = _record_id(raw)
        event = notifier_pb2.NotificationEvent(
            subscription_id=subscriber.subscription_id,
            user_id=subscriber.user_id,
            app_type=common_pb2.APP_TYPE_CRM,
            module=module,
            operation=operation,
            record_id=record_id,
            affected_fields=_crm_affected(body, record_id),
            origin=notifier_pb2.EVENT_ORIGIN_CALLBACK,
        )
        raw_values = _crm_values(body, record_id)
        values = _struct(raw_values)
        if values is not None:
            event.values.CopyFrom(values)
            modified = _iso_time(raw_values.get("Modified_Time"))
            if modified is not None:
                event.record_modified_time.CopyFrom(modified)
        if event_time is not None:
            event.event_time.CopyFrom(event_time)
        key = _key(subscriber.subscription_id, module, operation, record_id, when)
        events.append(NewEvent(key, event))
    return events


def desk_events(subscriber: Subscriber, body: Sequence[Any]) -> list[NewEvent]:
    if len(body) > MAX_EVENTS_PER_DELIVERY:
        raise MalformedCallback(f"more than {MAX_EVENTS_PER_DELIVERY} events in one delivery")
    events = []
    for item in body:
        if not isinstance(item, dict):
            raise MalformedCallback("an event is not a JSON object")
        event_type = item.get("eventType")
        if not isinstance(event_type, str) or "_" not in event_type:
            raise MalformedCallback("eventType is missing")
        payload = item.get("payload")
        if not isinstance(payload, dict):
            raise MalformedCallback("payload is not a JSON object")
        record_id = _record_id(payload.get("id"))
        previous = item.get("prevState")
        event = notifier_pb2.NotificationEvent(
            subscription_id=subscriber.subscription_id,
            user_id=subscriber.user_id,
            app_type=common_pb2.APP_TYPE_DESK,
            module=event_type.split("_", 1)[0],
            operation=event_type,
            record_id=record_id,
            affected_fields=sorted(previous) if isinstance(previous, dict) else [],
            origin=notifier_pb2.EVENT_ORIGIN_CALLBACK,
        )
        modified = _iso_time(payload.get("modifiedTime"))
        if modified is not None:
            event.record_modified_time.CopyFrom(modified)
        values = _struct(payload)
        if values is not None:
            event.values.CopyFrom(values)
        prev = _struct(previous)
        if prev is not None:
            event.previous.CopyFrom(prev)
        event_time = _time(item.get("eventTime"))
        if event_time is not None:
            event.event_time.CopyFrom(event_time)
        when = str(item.get("eventTime"))
        if event_time is None:
            # No time to tell two changes apart: the state they produced does.
            when = json.dumps([payload, previous], sort_keys=True, default=str)
        key = _key(subscriber.subscription_id, event_type, record_id, when)
        events.append(NewEvent(key, event))
    return events
