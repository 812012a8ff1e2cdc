"""Cursors: opaque to callers, a position in the log to the notifier."""

from __future__ import annotations

import re

from servicekit.errors import Violations

CURSOR_LENGTH = 16  # hex digits: every cursor has this length (events/wire.py counts on it)
# Whole-matched: a regex ending in `$` would let "...\n" through.
_CURSOR = re.compile(f"[0-9a-f]{{{CURSOR_LENGTH}}}")


def format_cursor(position: int) -> str:
    return f"{position:016x}"  # CURSOR_LENGTH digits, spelled out: one format per event


def check_cursor(v: Violations, field: str, text: str) -> int | None:
    """The position `text` names; None, with the field added to `v`, if it names none."""
    if not _CURSOR.fullmatch(text):
        v.add(field, "not a cursor this notifier gave out")
        return None
    return int(text, 16)


def parse_cursor(text: str, field: str = "after_cursor") -> int:
    v = Violations()
    position = check_cursor(v, field, text)
    v.raise_if_any()
    assert position is not None
    return position
