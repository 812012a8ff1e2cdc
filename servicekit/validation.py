"""Field checks both services apply to the same fields, with the same limits."""

from __future__ import annotations

import math

from google.protobuf import struct_pb2, timestamp_pb2

from servicekit.errors import Violations
from servicekit.identifiers import is_clean_text
from zoho.common.v1 import common_pb2

MAX_USER_ID = 255  # the width of zoho_connections.user_id


def check_user_id(v: Violations, value: str, field: str = "user_id") -> None:
    if not value:
        v.add(field, "required")
    elif len(value) > MAX_USER_ID:
        v.add(field, f"at most {MAX_USER_ID} characters, got {len(value)}")
    elif value != value.strip() or not value.isprintable() or not is_clean_text(value):
        v.add(field, "no leading or trailing spaces, control characters or NUL bytes")


def valid_user_id(value: str) -> bool:
    """What check_user_id accepts, for values that come from elsewhere (a page token)."""
    v = Violations()
    check_user_id(v, value)
    return not v.items and is_clean_text(value)


def check_app_type(v: Violations, value: int, *, allow_unspecified: bool) -> None:
    if value not in common_pb2.AppType.values():
        v.add("app_type", f"unknown value {value}")
    elif value == common_pb2.APP_TYPE_UNSPECIFIED and not allow_unspecified:
        v.add("app_type", "must be APP_TYPE_CRM or APP_TYPE_DESK")


# google.protobuf.Timestamp's documented range, 0001-01-01T00:00:00Z to
# 9999-12-31T23:59:59.999999999Z: outside it (or with nanos outside 0..999999999)
# ToDatetime raises, so a Timestamp field is checked before anything converts it.
MIN_TIMESTAMP_SECONDS = -62_135_596_800
MAX_TIMESTAMP_SECONDS = 253_402_300_799


def check_timestamp(v: Violations, field: str, value: timestamp_pb2.Timestamp) -> None:
    if not 0 <= value.nanos <= 999_999_999:
        v.add(field, "nanos must be between 0 and 999999999")
    elif not MIN_TIMESTAMP_SECONDS <= value.seconds <= MAX_TIMESTAMP_SECONDS:
        v.add(field, "must be between 0001-01-01 and 9999-12-31 (UTC)")


def check_clean_text(v: Violations, field: str, value: str) -> None:
    """Free text that is sent on (to Zoho, to the database): no NUL, no lone surrogate."""
    if not is_clean_text(value):
        v.add(field, "no NUL bytes or unpaired surrogates")


def check_struct(v: Violations, field: str, value: struct_pb2.Struct) -> None:
    """A Struct that becomes JSON: every string clean, every number finite (JSON has no NaN)."""
    pending: list[tuple[str, struct_pb2.Value]] = [
        (f"{field}.{key}", item) for key, item in value.fields.items()
    ]
    while pending and len(v.items) < 20:
        path, item = pending.pop()
        kind = item.WhichOneof("kind")
        if not is_clean_text(path):
            v.add(field, "a key holds a NUL byte or an unpaired surrogate")
        elif kind == "string_value" and not is_clean_text(item.string_value):
            v.add(path, "no NUL bytes or unpaired surrogates")
        elif kind == "number_value" and not math.isfinite(item.number_value):
            v.add(path, "must be a finite number")
        elif kind == "struct_value":
            pending.extend((f"{path}.{k}", x) for k, x in item.struct_value.fields.items())
        elif kind == "list_value":
            pending.extend((f"{path}[{i}]", x) for i, x in enumerate(item.list_value.values))
