"""Validation of Desk webhook bodies, with Desk's `errors:[{fieldName,errorType,...}]`."""

from __future__ import annotations

from typing import Any

from sandbox import demo
from sandbox.clock import iso_millis_z
from sandbox.desk_store import Webhook
from sandbox.state import SandboxState

EVENTS = frozenset(
    f"{entity}_{action}"
    for entity, actions in {
        "Ticket": (
            "Add",
            "Update",
            "Delete",
            "Approval_Add",
            "Approval_Update",
            "Thread_Add",
            "Comment_Add",
            "Comment_Update",
            "Attachment_Add",
            "Attachment_Update",
            "Attachment_Delete",
        ),
        "Contact": ("Add", "Update", "Delete"),
        "Account": ("Add", "Update", "Delete"),
        "Agent": ("Add", "Update", "Delete"),
        "Department": ("Add", "Update"),
        "Task": ("Add", "Update", "Delete"),
        "Call": ("Add", "Update", "Delete"),
        "Event": ("Add", "Update", "Delete"),
        "TimeEntry": ("Add", "Update", "Delete"),
        "Article": ("Add", "Update", "Delete"),
    }.items()
    for action in actions
)
MAX_NAME = 100
MAX_DESCRIPTION = 500
MAX_UPDATE_FIELDS = 5
WRITABLE = ("name", "url", "description", "subscriptions", "ignoreSourceId", "isEnabled")


class WebhookError(ValueError):
    def __init__(self, field: str, error_type: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.error_type = error_type
        self.message = message


def _check(field: str, value: Any) -> Any:
    if field == "name":
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
            raise WebhookError(field, "invalid", f"name must be 1-{MAX_NAME} characters")
    elif field == "url":
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            raise WebhookError(field, "invalid", "url must be an http(s) URL")
    elif field == "description":
        if value is not None and (not isinstance(value, str) or len(value) > MAX_DESCRIPTION):
            raise WebhookError(field, "invalid", "description must be a string")
    elif field == "ignoreSourceId":
        if value is not None and not isinstance(value, str):
            raise WebhookError(field, "invalid", "ignoreSourceId must be a string")
    elif field == "isEnabled":
        if not isinstance(value, bool):
            raise WebhookError(field, "invalid", "isEnabled must be a boolean")
    elif field == "subscriptions":
        _check_subscriptions(value)
    return value


def _check_subscriptions(value: Any) -> None:
    if not isinstance(value, dict) or not value:
        raise WebhookError("subscriptions", "invalid", "subscriptions must name events")
    for event, options in value.items():
        if event not in EVENTS:
            raise WebhookError(f"subscriptions.{event}", "invalid", "unknown event")
        if options is None:
            continue
        if not isinstance(options, dict):
            raise WebhookError(f"subscriptions.{event}", "invalid", "options must be an object")
        fields = options.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
                raise WebhookError(f"subscriptions.{event}.fields", "invalid", "list of names")
            if len(fields) > MAX_UPDATE_FIELDS:
                raise WebhookError(
                    f"subscriptions.{event}.fields", "invalid", f"at most {MAX_UPDATE_FIELDS}"
                )
        departments = options.get("departmentIds")
        if departments is not None and (
            not isinstance(departments, list) or not all(isinstance(d, str) for d in departments)
        ):
            raise WebhookError(f"subscriptions.{event}.departmentIds", "invalid", "list of ids")
        prev = options.get("includePrevState")
        if prev is not None and not isinstance(prev, bool):
            raise WebhookError(f"subscriptions.{event}.includePrevState", "invalid", "boolean")


def build_webhook(state: SandboxState, raw: Any) -> Webhook:
    """A new webhook from a POST body."""
    if not isinstance(raw, dict):
        raise WebhookError("body", "invalid", "the body must be a JSON object")
    for field in ("name", "url", "subscriptions"):
        if raw.get(field) is None:
            raise WebhookError(field, "missing", f"{field} is required")
    values = {f: _check(f, raw[f]) for f in WRITABLE if f in raw}
    return demo.webhook(
        state,
        name=values["name"],
        url=values["url"],
        subscriptions=values["subscriptions"],
        description=values.get("description"),
        ignore_source_id=values.get("ignoreSourceId"),
        is_enabled=values.get("isEnabled", True),
    )


def patch_webhook(state: SandboxState, current: Webhook, raw: Any) -> Webhook:
    """`current` updated with the fields a PATCH body gives; validated before any change."""
    if not isinstance(raw, dict):
        raise WebhookError("body", "invalid", "the body must be a JSON object")
    for field in ("name", "url", "subscriptions", "isEnabled"):
        if field in raw and raw[field] is None:
            raise WebhookError(field, "invalid", f"{field} cannot be null")
    values = {f: _check(f, raw[f]) for f in WRITABLE if f in raw}
    updated = {**current, **values, "modifiedTime": iso_millis_z(state.clock.now())}
    return updated
