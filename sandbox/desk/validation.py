"""Validation of Desk webhook bodies (zohodesk-oas v1.0 Webhook.json), with Desk's
`errors:[{fieldName,errorType,errorMessage}]`; `fieldName` is a JSON pointer (`/url`,
`/subscriptions/Ticket_Update/fields`), as Common.json's invalidDataErrorResponse says."""

from __future__ import annotations

import re
from typing import Any

from sandbox.clock import iso_millis_z
from sandbox.demo import tenant as demo
from sandbox.desk.events import DIRECTIONS, EVENT_OPTIONS, MAX_UPDATE_FIELDS
from sandbox.desk.store import Webhook
from sandbox.state import SandboxState

MAX_NAME = 100
MAX_DESCRIPTION = 3000
MAX_URL = 500
WRITABLE = (
    "name",
    "url",
    "description",
    "subscriptions",
    "ignoreSourceId",
    "isEnabled",
    "includeEventsFrom",
)
UUID_OR_EMPTY = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$"
)
EVENT_SOURCES = ("AUTOMATION",)


class WebhookError(ValueError):
    def __init__(self, field: str, error_type: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field  # a JSON pointer
        self.error_type = error_type
        self.message = message


def _bad(pointer: str, message: str) -> WebhookError:
    return WebhookError(pointer, "invalid", message)


def _check(field: str, value: Any) -> Any:
    pointer = f"/{field}"
    if field == "url":
        if (
            not isinstance(value, str)
            or not value.startswith(("http://", "https://"))
            or len(value) > MAX_URL
        ):
            raise _bad(pointer, f"url must be an http(s) URL of at most {MAX_URL} characters")
    elif field == "subscriptions":
        _check_subscriptions(value)
    elif value is None:
        if field == "isEnabled":
            raise _bad(pointer, "isEnabled must be a boolean")
    elif field == "name":
        if not isinstance(value, str) or len(value) > MAX_NAME:
            raise _bad(pointer, f"name must be at most {MAX_NAME} characters")
    elif field == "description":
        if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
            raise _bad(pointer, f"description must be at most {MAX_DESCRIPTION} characters")
    elif field == "ignoreSourceId":
        if not isinstance(value, str) or not UUID_OR_EMPTY.match(value):
            raise _bad(pointer, "ignoreSourceId must be a UUID or empty")
    elif field == "isEnabled":
        if not isinstance(value, bool):
            raise _bad(pointer, "isEnabled must be a boolean")
    elif field == "includeEventsFrom" and (
        not isinstance(value, list) or not all(v in EVENT_SOURCES for v in value)
    ):
        raise _bad(pointer, f"includeEventsFrom takes {list(EVENT_SOURCES)}")
    return value


def _ids(value: Any, pointer: str) -> None:
    ok = isinstance(value, list) and all(
        (isinstance(v, str) and v.isdigit()) or (isinstance(v, int) and not isinstance(v, bool))
        for v in value
    )
    if value is not None and not ok:
        raise _bad(pointer, "a list of ids")


def _check_options(event: str, options: Any, pointer: str) -> None:
    allowed = EVENT_OPTIONS[event]
    if options is None:
        return
    if allowed is None:
        raise _bad(pointer, f"{event} takes no options: pass null")
    if not isinstance(options, dict):
        raise _bad(pointer, "options must be an object or null")
    for key, value in options.items():
        here = f"{pointer}/{key}"
        if key not in allowed:
            raise _bad(here, f"{event} takes only {list(allowed)}")
        if key in ("departmentIds", "departmentId"):
            _ids(value, here)
        elif key == "fields" and value is not None:
            if not isinstance(value, list) or not all(isinstance(f, str) for f in value):
                raise _bad(here, "a list of field names")
            if len(value) > MAX_UPDATE_FIELDS:
                raise _bad(here, f"at most {MAX_UPDATE_FIELDS} fields")
        elif key == "includePrevState" and value is not None and not isinstance(value, bool):
            raise _bad(here, "a boolean")
        elif key == "direction" and value not in (None, *DIRECTIONS):
            raise _bad(here, f"one of {list(DIRECTIONS)}")


def _check_subscriptions(value: Any) -> None:
    if not isinstance(value, dict) or not value:
        raise _bad("/subscriptions", "subscriptions must name events")
    for event, options in value.items():
        pointer = f"/subscriptions/{event}"
        if event not in EVENT_OPTIONS:
            raise _bad(pointer, "unknown event")
        _check_options(event, options, pointer)


def _values(raw: Any, required: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise WebhookError("/", "invalid", "the body must be a JSON object")
    for key in raw:
        if key not in WRITABLE:
            raise _bad(f"/{key}", "unknown field")
    for field in required:
        if raw.get(field) is None:
            raise WebhookError(f"/{field}", "missing", f"{field} is required")
    return {f: _check(f, raw[f]) for f in WRITABLE if f in raw}


def build_webhook(state: SandboxState, raw: Any) -> Webhook:
    """A new webhook from a POST body: only `url` and `subscriptions` are required."""
    values = _values(raw, ("url", "subscriptions"))
    return demo.webhook(
        state,
        name=values.get("name") or "",
        url=values["url"],
        subscriptions=values["subscriptions"],
        description=values.get("description"),
        ignore_source_id=values.get("ignoreSourceId"),
        is_enabled=values.get("isEnabled", True),
        include_events_from=values.get("includeEventsFrom") or [],
    )


def patch_webhook(state: SandboxState, current: Webhook, raw: Any) -> Webhook:
    """`current` updated with the fields a PATCH body gives (it must carry
    `subscriptions`); validated before any change."""
    values = _values(raw, ("subscriptions",))
    if "isEnabled" in values and values["isEnabled"] is None:
        raise _bad("/isEnabled", "isEnabled must be a boolean")
    return {**current, **values, "modifiedTime": iso_millis_z(state.clock.now())}
