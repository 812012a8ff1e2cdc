"""Zoho's callback bodies (CRM channel POSTs, Desk webhook arrays) split into one
NotificationEvent per record, each with a dedupe key.

Zoho sends no event id, so the key is a digest of what identifies one change: the
subscription, the record, the operation and Zoho's own time of the change (CRM's
`server_time`, Desk's `eventTime`). A delivery Zoho repeats carries the same values
and so the same keys; two real changes of one record differ at least in the time.

What one delivery may expand to is bounded (`DeliveryLimits`): a CRM callback's flat
`affected_fields` applies to each of its records, so 1,000 ids and 200,000 names would be
200 million stored names. The stored size is predicted before any event is built and
counted exactly as each is; past a bound the delivery is refused whole
(`DeliveryTooLarge`, 413 naming the bound). The split is a generator, so the ingress can
let the event loop run between slices of it."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from notifier.events.log import NewEvent
from notifier.ingress.limits import DeliveryLimits
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

# What an event costs stored besides its names and values (ids, module, times, tags).
EVENT_OVERHEAD_BYTES = 160
# Zoho's names in callbacks (insert/update) and in subscriptions (create/edit) alike.
_CRM_OPERATIONS = {
    "insert": "create", "create": "create",
    "update": "edit", "edit": "edit",
    "delete": "delete",
}


class MalformedCallback(ValueError):
    """A verified delivery we cannot read: 400, with this text (never a secret)."""


class DeliveryTooLarge(MalformedCallback):
    """A verified delivery past one of `DeliveryLimits`: 413, naming the bound's variable."""

    def __init__(self, what: str, variable: str, limit: int) -> None:
        super().__init__(f"{what}: past {variable}={limit}")
        self.variable = variable


class _Budget:
    """One delivery's bounds, and what its events have used of them so far."""

    def __init__(self, limits: DeliveryLimits) -> None:
        self.limits = limits
        self.stored = 0

    def events(self, count: int) -> None:
        if count > self.limits.max_events:
            raise DeliveryTooLarge(
                f"{count} events in one delivery", "NOTIFIER_INGRESS_MAX_EVENTS_PER_DELIVERY",
                self.limits.max_events,
            )

    def fields(self, count: int) -> None:
        if count > self.limits.max_fields_per_event:
            raise DeliveryTooLarge(
                f"{count} field names for one record", "NOTIFIER_INGRESS_MAX_FIELDS_PER_EVENT",
                self.limits.max_fields_per_event,
            )

    def predicted(self, size: int) -> None:
        """Refuses, before anything is built, a delivery that would store more than allowed."""
        if size > self.limits.max_stored_bytes:
            raise DeliveryTooLarge(
                f"the delivery would store {size} bytes",
                "NOTIFIER_INGRESS_MAX_STORED_BYTES_PER_DELIVERY", self.limits.max_stored_bytes,
            )

    def event(self, event: notifier_pb2.NotificationEvent) -> None:
        values = event.values.ByteSize() + event.previous.ByteSize()
        if values > self.limits.max_values_bytes:
            raise DeliveryTooLarge(
                f"{values} bytes of values for one record", "NOTIFIER_INGRESS_MAX_VALUES_BYTES",
                self.limits.max_values_bytes,
            )
        self.stored += event.ByteSize()
        self.predicted(self.stored)


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


# Python's json reads NaN, Infinity and 1e999 as floats JSON itself cannot carry, and
# the gRPC side refuses them in a Struct: stored, one would poison every replay of the
# stream. Zoho never re-sends, so the event is kept with each such number written as
# proto3's JSON mapping writes a non-finite double: the strings below.
_NON_FINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _finite(value: Any) -> Any:
    """`value` with every non-finite number replaced by its proto3 JSON string."""
    if isinstance(value, float) and not math.isfinite(value):
        return _NON_FINITE.get(value, "NaN")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


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
        holder.update(_finite(value))
    except (ValueError, TypeError, RecursionError):
        raise MalformedCallback("a payload holds a value JSON cannot carry") from None
    return holder


def _record_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= 64:
        return value
    raise MalformedCallback("a record id is not a string of at most 64 characters")


class _CrmFields:
    """`affected_fields`, read once: names for every record, or [{"<record id>": [names]}]
    per record (both are seen)."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.common: list[str] = []
        self.per_record: dict[str, list[str]] = {}
        entries = body.get("affected_fields") or []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, str):
                self.common.append(entry)
            elif isinstance(entry, dict):
                for record_id, fields in entry.items():
                    if isinstance(fields, list):
                        named = self.per_record.setdefault(str(record_id), [])
                        named.extend(f for f in fields if isinstance(f, str))
        self.common_bytes = sum(len(name) + 3 for name in self.common)

    def of(self, record_id: str) -> list[str]:
        own = self.per_record.get(record_id)
        return self.common + own if own else self.common


def _crm_values(body: dict[str, Any]) -> dict[str, Any]:
    """`affected_values` by record id (the first entry for an id counts)."""
    found: dict[str, Any] = {}
    entries = body.get("affected_values") or []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            found.setdefault(str(entry.get("record_id")), entry.get("values"))
    return found


def _unique_ids(ids: list[Any]) -> list[str]:
    """Record ids in order, each once: a repeated id is the same change (the same key),
    and must not build its event, values included, again."""
    return list(dict.fromkeys(_record_id(raw) for raw in ids))


def crm_events(
    subscriber: Subscriber, body: dict[str, Any], limits: DeliveryLimits
) -> Iterator[NewEvent]:
    """The delivery's events one by one; raises MalformedCallback (DeliveryTooLarge) before
    the first when what it would store can be told up front, else on the way."""
    module = body.get("module")
    if not isinstance(module, str) or not module:
        raise MalformedCallback("module is missing")
    operation = _CRM_OPERATIONS.get(str(body.get("operation", "")).lower())
    if operation is None:
        raise MalformedCallback("operation is not insert, update or delete")
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise MalformedCallback("ids is not a list of record ids")
    budget = _Budget(limits)
    budget.events(len(ids))
    record_ids = _unique_ids(ids)
    fields = _CrmFields(body)
    budget.fields(len(fields.common) + max(map(len, fields.per_record.values()), default=0))
    budget.predicted(len(record_ids) * (EVENT_OVERHEAD_BYTES + fields.common_bytes))
    values_by_id = _crm_values(body)
    server_time = body.get("server_time")
    event_time = _time(server_time)
    when = str(server_time)
    if event_time is None:
        # No time to tell two changes apart: what the delivery says of them does.
        said = {k: v for k, v in body.items() if k not in ("token", "query_params")}
        when = json.dumps(said, sort_keys=True, default=str)
    return _crm_built(subscriber, module, operation, record_ids, fields, values_by_id,
                      event_time, when, budget)


def _crm_built(
    subscriber: Subscriber, module: str, operation: str, record_ids: list[str],
    fields: _CrmFields, values_by_id: dict[str, Any],
    event_time: timestamp_pb2.Timestamp | None, when: str, budget: _Budget,
) -> Iterator[NewEvent]:
    for record_id in record_ids:
        event = notifier_pb2.NotificationEvent(
            subscription_id=subscriber.subscription_id,
            user_id=subscriber.user_id,
            app_type=common_pb2.APP_TYPE_CRM,
            module=module,
            operation=operation,
            record_id=record_id,
            affected_fields=fields.of(record_id),
            origin=notifier_pb2.EVENT_ORIGIN_CALLBACK,
        )
        raw_values = values_by_id.get(record_id) or {}
        values = _struct(raw_values)
        if values is not None:
            event.values.CopyFrom(values)
            modified = _iso_time(raw_values.get("Modified_Time"))
            if modified is not None:
                event.record_modified_time.CopyFrom(modified)
        if event_time is not None:
            event.event_time.CopyFrom(event_time)
        budget.event(event)
        key = _key(subscriber.subscription_id, module, operation, record_id, when)
        yield NewEvent(key, event)


def desk_events(
    subscriber: Subscriber, body: Sequence[Any], limits: DeliveryLimits
) -> Iterator[NewEvent]:
    budget = _Budget(limits)
    budget.events(len(body))
    return _desk_built(subscriber, body, budget)


def _desk_built(subscriber: Subscriber, body: Sequence[Any], budget: _Budget) -> Iterator[NewEvent]:
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
        if isinstance(previous, dict):
            budget.fields(len(previous))
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
        budget.event(event)
        key = _key(subscriber.subscription_id, event_type, record_id, when)
        yield NewEvent(key, event)
