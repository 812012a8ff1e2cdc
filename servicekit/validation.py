"""Field checks both services apply to the same fields, with the same limits."""

from __future__ import annotations

from servicekit.errors import Violations
from zoho.common.v1 import common_pb2

MAX_USER_ID = 255  # the width of zoho_connections.user_id


def check_user_id(v: Violations, value: str, field: str = "user_id") -> None:
    if not value:
        v.add(field, "required")
    elif len(value) > MAX_USER_ID:
        v.add(field, f"at most {MAX_USER_ID} characters, got {len(value)}")
    elif value != value.strip() or not value.isprintable():
        v.add(field, "no leading or trailing spaces, control characters or NUL bytes")


def check_app_type(v: Violations, value: int, *, allow_unspecified: bool) -> None:
    if value not in common_pb2.AppType.values():
        v.add("app_type", f"unknown value {value}")
    elif value == common_pb2.APP_TYPE_UNSPECIFIED and not allow_unspecified:
        v.add("app_type", "must be APP_TYPE_CRM or APP_TYPE_DESK")
