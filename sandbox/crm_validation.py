"""Validation of CRM `watch` items, item by item, with Zoho's item-level errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox import demo
from sandbox.clock import iso_with_offset, parse_iso
from sandbox.crm_store import WatchItem
from sandbox.state import SandboxState

HOUR = 3600
WEEK = 7 * 24 * HOUR
MAX_EVENTS = 10
MAX_CHANNEL_ID = 64
MAX_TOKEN = 50
OPS = ("create", "edit", "delete", "all")
OPTIONAL_BOOLS = ("notify_on_related_action", "return_affected_field_values")


class WatchError(ValueError):
    """One item's failure: becomes `{"code","details","message","status":"error"}`."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message} {details}")
        self.code = code
        self.message = message
        self.details = details

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "details": self.details,
            "message": self.message,
            "status": "error",
        }


def _invalid(name: str, path: str, message: str, **extra: Any) -> WatchError:
    return WatchError("INVALID_DATA", message, {"api_name": name, "json_path": path, **extra})


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
    required = (
        ("channel_id", "events", "notify_url") if mode in ("POST", "PUT") else ("channel_id",)
    )
    for name in required:
        if raw.get(name) is None:
            raise WatchError(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                {"api_name": name, "json_path": f"{path}.{name}"},
            )
    request = WatchRequest(channel_id=_channel_id(raw["channel_id"], f"{path}.channel_id"))
    if raw.get("events") is not None:
        request.events_by_module = _events(raw["events"], f"{path}.events")
    if "notify_url" in raw:
        url = raw["notify_url"]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _invalid("notify_url", f"{path}.notify_url", "invalid data")
        request.attrs["notify_url"] = url
    if "token" in raw:
        token = raw["token"]
        if token is not None and (not isinstance(token, str) or len(token) > MAX_TOKEN):
            raise _invalid("token", f"{path}.token", "invalid data", maximum_length=MAX_TOKEN)
        request.attrs["token"] = token
    if "channel_expiry" in raw:
        request.attrs["channel_expiry"] = _expiry(state, raw["channel_expiry"], path)
    for name in OPTIONAL_BOOLS:
        if name in raw:
            if not isinstance(raw[name], bool):
                raise _invalid(name, f"{path}.{name}", "invalid data", expected_data_type="boolean")
            request.attrs[name] = raw[name]
    if "fields" in raw:
        if raw["fields"] is not None and not isinstance(raw["fields"], list | dict):
            raise _invalid("fields", f"{path}.fields", "invalid data")
        request.attrs["fields"] = raw["fields"]
    if "notification_condition" in raw:
        if not isinstance(raw["notification_condition"], list):
            raise _invalid(
                "notification_condition", f"{path}.notification_condition", "invalid data"
            )
        request.attrs["notification_condition"] = raw["notification_condition"]
    if "_delete_events" in raw:
        if not isinstance(raw["_delete_events"], bool) or mode != "PATCH":
            raise _invalid("_delete_events", f"{path}._delete_events", "invalid data")
        request.delete_events = raw["_delete_events"]
        if request.delete_events and not request.events_by_module:
            raise WatchError(
                "MANDATORY_NOT_FOUND",
                "required field not found",
                {"api_name": "events", "json_path": f"{path}.events"},
            )
    return request


def _channel_id(value: Any, path: str) -> str:
    # Zoho documents a long; the OAS a string of digits. Accept both, store the string.
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        value = str(value)
    if not isinstance(value, str) or not value.isdigit() or len(value) > MAX_CHANNEL_ID:
        raise _invalid("channel_id", path, "invalid data", maximum_length=MAX_CHANNEL_ID)
    return value


def _events(value: Any, path: str) -> dict[str, list[str]]:
    if not isinstance(value, list) or not value:
        raise _invalid("events", path, "invalid data")
    if len(value) > MAX_EVENTS:
        raise _invalid("events", path, "invalid data", maximum_length=MAX_EVENTS)
    by_module: dict[str, list[str]] = {}
    for i, event in enumerate(value):
        here = f"{path}[{i}]"
        if not isinstance(event, str) or event.count(".") != 1:
            raise _invalid("events", here, "invalid data")
        module, op = event.split(".")
        if module not in demo.CRM_MODULES:
            raise WatchError(
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                {"api_name": "events", "json_path": here},
            )
        if op not in OPS:
            raise _invalid("events", here, "invalid data")
        ops = by_module.setdefault(module, [])
        if event not in ops:
            ops.append(event)
    return by_module


def _expiry(state: SandboxState, value: Any, path: str) -> str:
    epoch = parse_iso(value) if isinstance(value, str) else None
    now = state.clock.now()
    if epoch is None or epoch <= now or epoch > now + WEEK + 60:
        raise _invalid("channel_expiry", f"{path}.channel_expiry", "invalid data")
    return str(value)


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
        channel_expiry=attrs.get("channel_expiry") or iso_with_offset(state.clock.now() + HOUR),
        notify_on_related_action=attrs.get("notify_on_related_action", False),
        return_affected_field_values=attrs.get("return_affected_field_values", False),
        fields=attrs.get("fields"),
        notification_condition=attrs.get("notification_condition"),
    )


def build_item(state: SandboxState, raw: Any, path: str, mode: str = "POST") -> list[WatchItem]:
    """The items (one per module) a POST of `raw` would create; for seeding."""
    request = parse_watch(state, raw, path, mode)
    return [new_item(state, request, m, ev) for m, ev in request.events_by_module.items()]
