"""Cursors: opaque to callers, a position in the log to the notifier."""

from __future__ import annotations

import re

from servicekit.errors import InvalidArgument

CURSOR_LENGTH = 16  # hex digits: every cursor has this length (events/wire.py counts on it)
# Whole-matched: a regex ending in `$` would let "...\n" through.
_CURSOR = re.compile(f"[0-9a-f]{{{CURSOR_LENGTH}}}")


def format_cursor(position: int) -> str:
    return f"{position:0{CURSOR_LENGTH}x}"


def parse_cursor(text: str, field: str = "after_cursor") -> int:
    if not _CURSOR.fullmatch(text):
        raise InvalidArgument([(field, "not a cursor this notifier gave out")])
    return int(text, 16)
