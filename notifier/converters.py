"""Zoho JSON <-> protos. Zoho's bodies are checked here, field by field: anything
unreadable becomes ZohoBadResponse, never a crash. The CRM channel `token` (the
callback verification secret) is read by nothing here and so never streamed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from notifier.queries import ListQuery
from servicekit.errors import ZohoBadResponse
from servicekit.validation import MAX_TIMESTAMP_SECONDS, MIN_TIMESTAMP_SECONDS
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2


class _Reader:
    """Typed access to one JSON object from Zoho, naming the field that is wrong."""

    def __init__(self, obj: Any, what: str, endpoint: str) -> None:
        if not isinstance(obj, dict):
            raise ZohoBadResponse(f"{what} is not a JSON object", endpoint=endpoint)
        self.obj = obj
        self.what = what
        self.endpoint = endpoint

    def bad(self, key: str, expected: str) -> ZohoBadResponse:
        return ZohoBadResponse(f"{self.what}.{key} is not {expected}", endpoint=self.endpoint)

    def text(self, key: str, *, required: bool = False) -> str:
        value = self.obj.get(key)
        if value is None and not required:
            return ""
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.bad(key, "a string")
        return str(value)

    def flag(self, key: str) -> bool:
        value = self.obj.get(key)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self.bad(key, "a boolean")
        return value

    def texts(self, key: str) -> list[str]:
        value = self.obj.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.bad(key, "a list of strings")
        for v in value:
            if not isinstance(v, str):
                raise self.bad(key, "a list of strings")
        return value

    def timestamp(self, key: str) -> timestamp_pb2.Timestamp | None:
        raw = self.obj.get(key)
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise self.bad(key, "an ISO-8601 time")
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise self.bad(key, "an ISO-8601 time") from None
        # Whole seconds and nanos from a timedelta: exact, and a third of the cost of
        # Timestamp.FromDatetime (a stream converts every item; see bench/streaming.py).
        since = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH
        seconds = since.days * 86400 + since.seconds
        # 9999-12-31T23:59:59-14:00 parses, but lies past the range a Timestamp may hold.
        if not MIN_TIMESTAMP_SECONDS <= seconds <= MAX_TIMESTAMP_SECONDS:
            raise self.bad(key, "a time between 0001 and 9999")
        return timestamp_pb2.Timestamp(seconds=seconds, nanos=since.microseconds * 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CRM = common_pb2.APP_TYPE_CRM


def crm_channel(item: Any, endpoint: str) -> notifier_pb2.Notification:
    r = _Reader(item, "watch item", endpoint)
    # Fields as a dict into one constructor: building a CrmChannel and then copying it
    # into the Notification costs half as much again.
    channel: dict[str, Any] = {
        "channel_id": r.text("channel_id", required=True),
        "events": r.texts("events"),
        "notify_url": r.text("notify_url"),
        "resource_name": r.text("resource_name"),
        "resource_id": r.text("resource_id"),
        "resource_uri": r.text("resource_uri"),
        "notify_on_related_action": r.flag("notify_on_related_action"),
        "return_affected_field_values": r.flag("return_affected_field_values"),
    }
    expiry = r.timestamp("channel_expiry")
    if expiry is not None:
        channel["channel_expiry"] = expiry
    # protobuf takes a dict for a message field; its generated stub does not say so.
    return notifier_pb2.Notification(app_type=_CRM, crm=channel)  # type: ignore[arg-type]


def desk_webhook(item: Any, endpoint: str) -> notifier_pb2.DeskWebhook:
    r = _Reader(item, "webhook", endpoint)
    subscriptions = item.get("subscriptions")
    if subscriptions is None:
        names: list[str] = []
    elif isinstance(subscriptions, dict):
        names = [str(name) for name in subscriptions]
    elif isinstance(subscriptions, list) and all(isinstance(s, str) for s in subscriptions):
        names = list(subscriptions)
    else:
        raise r.bad("subscriptions", "an object keyed by event name")
    webhook = notifier_pb2.DeskWebhook(
        id=r.text("id", required=True),
        name=r.text("name"),
        url=r.text("url"),
        description=r.text("description"),
        is_enabled=r.flag("isEnabled"),
        subscriptions=names,
    )
    created = r.timestamp("createdTime")
    if created is not None:
        webhook.created_time.CopyFrom(created)
    return webhook


def desk_notification(item: Any, endpoint: str) -> notifier_pb2.Notification:
    return notifier_pb2.Notification(
        app_type=common_pb2.APP_TYPE_DESK, desk=desk_webhook(item, endpoint)
    )


def list_field(body: Any, key: str, endpoint: str) -> list[Any]:
    """`body[key]` as a list; a missing body (204) is an empty list."""
    if body is None:
        return []
    if not isinstance(body, dict):
        raise ZohoBadResponse("the answer is not a JSON object", endpoint=endpoint)
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ZohoBadResponse(f"{key} is not a list", endpoint=endpoint)
    return value


# ---- writes ------------------------------------------------------------------------------


def crm_spec_json(spec: notifier_pb2.CrmChannelSpec, *, partial: bool = False) -> dict[str, Any]:
    """One item of a CRM write. With `partial` (PATCH), only the fields that are set."""
    item: dict[str, Any] = {"channel_id": spec.channel_id}
    if spec.events or not partial:
        item["events"] = list(spec.events)
    if spec.notify_url or not partial:
        item["notify_url"] = spec.notify_url
    if spec.HasField("channel_expiry"):
        item["channel_expiry"] = spec.channel_expiry.ToDatetime(tzinfo=UTC).isoformat(
            timespec="seconds"
        )
    if spec.token:
        item["token"] = spec.token
    # proto3 bools cannot say "unset": a PATCH sends them only when true.
    if spec.notify_on_related_action or not partial:
        item["notify_on_related_action"] = spec.notify_on_related_action
    if spec.return_affected_field_values or not partial:
        item["return_affected_field_values"] = spec.return_affected_field_values
    return item


def crm_disable_events_json(channel_id: str, events: Sequence[str]) -> dict[str, Any]:
    """The PATCH item that takes `events` off a channel and leaves the rest as it is."""
    return {"channel_id": channel_id, "events": list(events), "_delete_events": True}


def list_query(
    request: notifier_pb2.ListNotificationsRequest | notifier_pb2.ListNotificationPagesRequest,
) -> ListQuery:
    return ListQuery(
        user_id=request.user_id,
        app_type=request.app_type,
        page_size=request.page_size,
        module=request.module,
        channel_id=request.channel_id,
    )


def write_results(entries: Sequence[Any], endpoint: str) -> list[notifier_pb2.WriteResult]:
    results = []
    for index, entry in enumerate(entries):
        r = _Reader(entry, "write result", endpoint)
        result = notifier_pb2.WriteResult(
            index=index,
            status=r.text("status"),
            code=r.text("code"),
            message=r.text("message"),
        )
        details = entry.get("details")
        if isinstance(details, dict):
            result.details.CopyFrom(_struct(_without_secrets(details)))
        results.append(result)
    return results


def _without_secrets(value: Any) -> Any:
    """Zoho's details as sent, minus any channel `token`: Zoho does not echo it today, and
    it must not reach a caller if it ever does."""
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if k != "token"}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    holder = struct_pb2.Struct()
    json_format.ParseDict(value, holder)
    return holder


def desk_spec_json(
    spec: notifier_pb2.DeskWebhookSpec, fields: Sequence[str] | None = None
) -> dict[str, Any]:
    """A Desk webhook body; `fields` limits it to those (an update)."""
    options = json_format.MessageToDict(spec.subscription_options)
    body: dict[str, Any] = {
        "name": spec.name,
        "url": spec.url,
        "description": spec.description or None,
        "subscriptions": {name: options.get(name) for name in spec.subscriptions},
        "isEnabled": spec.is_enabled,
        "ignoreSourceId": spec.ignore_source_id or None,
    }
    if not fields:
        return body
    wanted = {DESK_UPDATE_FIELDS[f] for f in fields}
    return {key: value for key, value in body.items() if key in wanted}


# UpdateDeskWebhookRequest.update_fields -> Desk's JSON key.
DESK_UPDATE_FIELDS = {
    "name": "name",
    "url": "url",
    "description": "description",
    "subscriptions": "subscriptions",
    "is_enabled": "isEnabled",
    "ignore_source_id": "ignoreSourceId",
}
