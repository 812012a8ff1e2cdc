"""One change of one record is one event, whether a callback brought it or a read-back
(notifier/capture/) found it: whichever is stored first stands (SPEC, complete change
capture).

Zoho gives no change id, and a callback and a read-back describe one change differently:
a CRM callback has `server_time` (milliseconds, when Zoho sent it), a read-back the
record's `Modified_Time` (whole seconds, the last change only). So changes are matched by
record and kind, and edits by time with a tolerance:

- a creation matches a creation of the same record (a record is created once);
- a deletion matches a deletion of the same record;
- an edit (or a creation) at time t is already told when the same record has a creation
  or edit at t - MATCH_SECONDS or later: a read-back gives a record's latest state, so a
  stored change at least that recent means its latest change reached the log.

MATCH_SECONDS covers `Modified_Time`'s truncation to the second plus the time from the
change to Zoho's `server_time` (docs/zoho.md, "Change capture"). Its cost: a record changed
twice within it, the second callback lost, is taken as told.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from notifier.database.models import EventRow
from zoho.notifier.v1 import notifier_pb2

MATCH_SECONDS = 2.0
MATCH = timedelta(seconds=MATCH_SECONDS)

_PAIRS_PER_QUERY = 500
# A read-back never reads the newest NOTIFIER_CAPTURE_SETTLE_SECONDS (at least 1 s): a
# callback arriving sooner than this after its change cannot find the change already read
# back, so only later ones pay for the check on the ingress's hot path.
LATE_CALLBACK = timedelta(seconds=1)

CREATED = "c"
EDITED = "e"
DELETED = "d"
_CRM_KINDS = {"create": CREATED, "edit": EDITED, "delete": DELETED}
_DESK_KINDS = {"Add": CREATED, "Update": EDITED, "Delete": DELETED}


def kind_of(operation: str) -> str | None:
    """c / e / d for a change of a record itself (CRM create/edit/delete, Desk
    Ticket_Add/_Update/_Delete); None for anything else (gaps, Ticket_Thread_Add, ...),
    which is never matched."""
    if operation in _CRM_KINDS:
        return _CRM_KINDS[operation]
    resource, _, action = operation.partition("_")
    if resource and "_" not in action:
        return _DESK_KINDS.get(action)
    return None


def change_time(event: notifier_pb2.NotificationEvent) -> datetime | None:
    """Zoho's time of the change: the record's modified time when known, else the
    callback's time; None when neither is."""
    for field in ("record_modified_time", "event_time"):
        if event.HasField(field):
            stamp: Timestamp = getattr(event, field)
            return stamp.ToDatetime(tzinfo=UTC)
    return None


# The same rule as SQL over a candidate `t` (columns s, rid, kind, ct) and stored rows `r`,
# for PostgreSQL's one-statement append (events/log_postgres.py).
PG_MATCH = """
    r.subscription_id = t.s AND r.record_id = t.rid AND (
        (t.kind = 'c' AND r.change_kind = 'c')
        OR (t.kind = 'd' AND r.change_kind = 'd')
        OR (t.kind = 'e' AND r.change_kind IN ('c', 'e')
            AND r.change_time >= t.ct - make_interval(secs => %(match)s)))
"""


def matches(kind: str, at: datetime | None, stored_kind: str, stored_at: datetime | None) -> bool:
    """Whether a stored change (`stored_kind` at `stored_at`) already tells a new one."""
    if kind in (CREATED, DELETED):
        return stored_kind == kind
    return (
        stored_kind in (CREATED, EDITED)
        and at is not None
        and stored_at is not None
        and stored_at >= at - MATCH
    )


async def already_told(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]], *, origin: int | None
) -> set[str]:
    """The dedupe keys of `rows` (as events/log.py builds them) whose change a stored
    event already tells; `origin`: only stored events of that origin count (None: any)."""
    wanted = [row for row in rows if row["change_kind"] and row["record_id"]]
    stored: dict[tuple[str, str], list[tuple[str, datetime | None]]] = {}
    pairs = sorted({(row["subscription_id"], row["record_id"]) for row in wanted})
    for start in range(0, len(pairs), _PAIRS_PER_QUERY):
        query = select(
            EventRow.subscription_id, EventRow.record_id, EventRow.change_kind,
            EventRow.change_time,
        ).where(
            tuple_(EventRow.subscription_id, EventRow.record_id).in_(
                pairs[start:start + _PAIRS_PER_QUERY]
            ),
            EventRow.change_kind.is_not(None),
        )
        if origin is not None:
            query = query.where(EventRow.origin == origin)
        for sub, record, kind, at in (await conn.execute(query)).all():
            if record is not None and kind is not None:
                stored.setdefault((sub, record), []).append((kind, at))
    return {
        row["dedupe_key"]
        for row in wanted
        if any(
            matches(row["change_kind"], row["change_time"], kind, at)
            for kind, at in stored.get((row["subscription_id"], row["record_id"]), [])
        )
    }
