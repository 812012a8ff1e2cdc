"""Validation of CRM `watch` items, item by item, with Zoho's item-level errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.clock import iso_with_offset, parse_iso
from sandbox.crm.conditions import parse_conditions
from sandbox.crm.errors import WatchError, invalid, mandatory
from sandbox.crm.store import WatchItem
from sandbox.demo import tenant as demo
from sandbox.state import SandboxState

__all__ = ["WatchError", "WatchRequest", "build_item", "new_item", "parse_watch"]

HOUR = 3600
WEEK = 7 * 24 * HOUR
# Requests take up to 50 events and a 256-character token (the spec's request schemas);
# GET answers show at most 10 events.
MAX_EVENTS = 50
MAX_CHANNEL_ID = 64
MAX_TOKEN = 256
MAX_URL = 255
OPS = ("create", "edit", "delete", "all")
OPTIONAL_BOOLS = ("notify_on_related_action", "return_affected_field_values")
# The spec's item schemas are closed (additionalProperties: false).
KNOWN_KEYS = frozenset(
    {
        "channel_id",
        "events",
        "notify_url",
        "token",
        "channel_expiry",
        "notify_on_related_action",
        "return_affected_field_values",
        "fields",
        "notification_condition",
        "_delete_events",
    }
)


@dataclass
class WatchRequest:
    channel_id: str
    events_by_module: dict[str, list[str]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)  # only the fields the caller gave
    delete_events: bool = False


def parse_watch(state: SandboxState, raw: Any, path: str, mode: str) -> WatchRequest:
    """Check one item of a POST/PUT/PATCH body (mode is the method)."""
    if not isinstance(raw, dict):
        raise WatchError("INVALID_DATA", "invalid data", {"json_path": path})
    for key in raw:
        if key not in KNOWN_KEYS:
            raise invalid(str(key), f"{path}.{key}")
    required = (
        ("channel_id", "events", "notify_url") if mode in ("POST", "PUT") else ("channel_id",)
    )
    for name in required:
        if raw.get(name) is None:
            raise mandatory(name, f"{path}.{name}")
    numeric_ok = state.config.crm_numeric_channel_id
    request = WatchRequest(
        channel_id=_channel_id(raw["channel_id"], f"{path}.channel_id", numeric_ok)
    )
    if raw.get("events") is not None:
        request.events_by_module = _events(raw["events"], f"{path}.events")
    if "notify_url" in raw:
        url = raw["notify_url"]
        if (
            not isinstance(url, str)
            or not url.startswith(("http://", "https://"))
            or len(url) > MAX_URL
        ):
            raise invalid("notify_url", f"{path}.notify_url", "invalid data")
        request.attrs["notify_url"] = url
    if "token" in raw:
        token = raw["token"]
        if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN):
            raise invalid("token", f"{path}.token", "invalid data", maximum_length=MAX_TOKEN)
        request.attrs["token"] = token
    if "channel_expiry" in raw:
        request.attrs["channel_expiry"] = _expiry(state, raw["channel_expiry"], path)
    for name in OPTIONAL_BOOLS:
        if name in raw:
            if not isinstance(raw[name], bool):
                raise invalid(name, f"{path}.{name}", "invalid data", expected_data_type="boolean")
            request.attrs[name] = raw[name]
    if "fields" in raw:
        if raw["fields"] is not None and not isinstance(raw["fields"], list | dict):
            raise invalid("fields", f"{path}.fields", "invalid data")
        request.attrs["fields"] = raw["fields"]
    if "notification_condition" in raw:
        request.attrs["notification_condition"] = parse_conditions(
            raw["notification_condition"], f"{path}.notification_condition"
        )
    if "_delete_events" in raw:
        if not isinstance(raw["_delete_events"], bool) or mode != "PATCH":
            raise invalid("_delete_events", f"{path}._delete_events", "invalid data")
        request.delete_events = raw["_delete_events"]
        if request.delete_events and not request.events_by_module:
            raise mandatory("events", f"{path}.events")
    return request


def _channel_id(value: Any, path: str, numeric_ok: bool) -> str:
    # The spec types it as a string (and the SDK sends one); the older docs as a long,
    # accepted only when `crm_numeric_channel_id` is set.
    if numeric_ok and isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if not isinstance(value, str):
        raise invalid("channel_id", path, expected_data_type="string")
    if not value.isdigit() or len(value) > MAX_CHANNEL_ID:
        raise invalid("channel_id", path, "invalid data", maximum_length=MAX_CHANNEL_ID)
    return value


def _events(value: Any, path: str) -> dict[str, list[str]]:
    if not isinstance(value, list) or not value:
        raise invalid("events", path, "invalid data")
    if len(value) > MAX_EVENTS:
        raise invalid("events", path, "invalid data", maximum_length=MAX_EVENTS)
    by_module: dict[str, list[str]] = {}
    for i, event in enumerate(value):
        here = f"{path}[{i}]"
        if not isinstance(event, str) or event.count(".") != 1:
            raise invalid("events", here, "invalid data")
        module, op = event.split(".")
        if module not in demo.CRM_MODULES:
            raise WatchError(
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                {"api_name": "events", "json_path": here},
            )
        if op not in OPS:
            raise invalid("events", here, "invalid data")
        ops = by_module.setdefault(module, [])
        if event not in ops:
            ops.append(event)
    return by_module


def _expiry(state: SandboxState, value: Any, path: str) -> str:
    """The expiry to store: as given, or one hour from now when it is later than a week
    (the v7 docs); a past or unreadable one is refused."""
    epoch = parse_iso(value) if isinstance(value, str) else None
    now = state.clock.now()
    if epoch is None or epoch <= now:
        raise invalid("channel_expiry", f"{path}.channel_expiry", "invalid data")
    if epoch > now + WEEK:
        return one_hour_from_now(state)
    return str(value)


def one_hour_from_now(state: SandboxState) -> str:
    return iso_with_offset(state.clock.now() + HOUR)


def new_item(
    state: SandboxState, request: WatchRequest, module: str, events: list[str]
) -> WatchItem:
    attrs = request.attrs
    return demo.watch_item(
        state,
        channel_id=request.channel_id,
        module=module,
        events=events,
        notify_url=attrs["notify_url"],
        token=attrs.get("token"),
        channel_expiry=attrs.get("channel_expiry") or one_hour_from_now(state),
        notify_on_related_action=attrs.get("notify_on_related_action", True),
        return_affected_field_values=attrs.get("return_affected_field_values", False),
        fields=attrs.get("fields"),
        notification_condition=attrs.get("notification_condition"),
    )


def build_item(state: SandboxState, raw: Any, path: str, mode: str = "POST") -> list[WatchItem]:
    """The items (one per module) a POST of `raw` would create; for seeding."""
    request = parse_watch(state, raw, path, mode)
    return [new_item(state, request, m, ev) for m, ev in request.events_by_module.items()]
