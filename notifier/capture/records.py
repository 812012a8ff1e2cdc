"""A watermark as change capture's code reads it: the record of a notifier_capture_cursors
row joined with the subscription columns a read-back needs (store.py builds it), so mypy
checks every attribute its readers use, as the keeper's and the subscriptions' records do.
(The window a read covers, from this watermark, is crm_window.py's `Window`.)"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Self

from sqlalchemy import Row

from notifier.app_types import AppType


@dataclass(frozen=True, slots=True)
class Watermark:
    """One subscription's module, read back up to `covered_until` so far, and its lease."""

    subscription_id: str
    # CRM module API name (Leads) or Desk resource (Ticket, Contact).
    module: str
    user_id: str
    app_type: AppType
    covered_until: datetime
    # The fence: a claim or a write matches only the version it read.
    version: int
    read_at: datetime
    lease_owner: str | None
    lease_until: datetime | None
    attempts: int
    # While the window cannot be read back: why, and whether its gap event was written.
    failing_reason: str | None
    gap_announced: bool
    # Why this read was wanted: sweep, start, gap, retry.
    cause: str
    # The subscription's: the event names asked for (a JSON list in the column), ...
    events: tuple[str, ...]
    created_at: datetime
    return_affected_field_values: bool
    desk_org_id: str | None

    @classmethod
    def of(cls, row: Row[*tuple[Any, ...]]) -> Self:
        """The record of a row holding the columns named as its fields: a column missing
        from the query fails here, not in a reader far away."""
        columns = row._mapping
        values = {f.name: columns[f.name] for f in fields(cls)}
        values["events"] = tuple(json.loads(values["events"]))
        return cls(**values)
