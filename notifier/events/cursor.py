"""Cursors: opaque to callers, a position in the log to the notifier."""

from __future__ import annotations

import re

import grpc

from servicekit.errors import InvalidArgument, ServiceError

_CURSOR = re.compile(r"^[0-9a-f]{16}$")


class CursorExpired(ServiceError):
    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "CURSOR_EXPIRED"

    def __init__(self) -> None:
        super().__init__(
            "after_cursor names an event older than the retention "
            "(NOTIFIER_EVENT_RETENTION_SECONDS): events after it may have been pruned; "
            "start again with from_earliest or from now",
            metadata={"field": "after_cursor"},
        )


def format_cursor(position: int) -> str:
    return f"{position:016x}"


def parse_cursor(text: str, field: str = "after_cursor") -> int:
    if not _CURSOR.match(text):
        raise InvalidArgument([(field, "not a cursor this notifier gave out")])
    return int(text, 16)
