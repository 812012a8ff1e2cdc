"""What a read-back found, as the events a callback would have brought: the operation a
callback would have named, `origin` RECOVERED, `record_modified_time`, the values read
where the subscription asked for values; deletes carry the id only (SPEC)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from google.protobuf import struct_pb2, timestamp_pb2

from notifier.app_types import CRM
from notifier.capture.records import Watermark
from notifier.capture.scope import crm_operation, desk_operation
from notifier.events.dedupe import CREATED, DELETED, EDITED
from notifier.events.log import NewEvent
from zoho.notifier.v1 import notifier_pb2

# Zoho's record times are whole seconds (CRM): a record modified a second or more after
# its creation was edited.
_EDITED_AFTER = timedelta(seconds=1)


@dataclass(frozen=True)
class Found:
    record_id: str
    kind: str  # events/dedupe.py: c, e, d
    modified: datetime  # Modified_Time / modifiedTime; deleted_time for a delete
    values: dict[str, Any] | None = None


def kinds_of(
    heard: set[str], created: datetime | None, modified: datetime, creations_since: datetime
) -> list[str]:
    """Which changes a record read back may stand for, for a subscription hearing
    `heard`: its creation (when made since `creations_since`: the subscription's start, or
    the event log's retention horizon if later; a creation the log already holds is then
    dropped by events/dedupe.py), and an edit (when modified after it was created). Both
    when both apply: two changes, each told at most once."""
    kinds = []
    # Zoho's created time is whole seconds, the subscription's is not: a record made in the
    # subscription's own second, after it, reads as earlier. Counting that whole second
    # in may also tell a creation made just before the subscription (a consumer applying
    # the stream upserts it); leaving it out loses a creation for good.
    since = creations_since.replace(microsecond=0)
    if CREATED in heard and created is not None and created >= since:
        kinds.append(CREATED)
    if EDITED in heard and (created is None or modified - created >= _EDITED_AFTER):
        kinds.append(EDITED)
    return kinds


def _stamp(value: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def to_event(row: Watermark, module: str, found: Found) -> NewEvent:
    """`row`: the cursor row joined with its subscription (capture/store.py `due`)."""
    if row.app_type == CRM:
        operation = crm_operation(found.kind)
    else:
        operation = desk_operation(module, found.kind)
    event = notifier_pb2.NotificationEvent(
        subscription_id=row.subscription_id,
        user_id=row.user_id,
        app_type=row.app_type,
        module=module,
        operation=operation,
        record_id=found.record_id,
        origin=notifier_pb2.EVENT_ORIGIN_RECOVERED,
        record_modified_time=_stamp(found.modified),
        event_time=_stamp(found.modified),
    )
    if found.kind != DELETED and found.values:
        holder = struct_pb2.Struct()
        try:
            holder.update(found.values)
        except (ValueError, TypeError):
            holder = struct_pb2.Struct()  # a value JSON cannot carry: the id still tells
        event.values.CopyFrom(holder)
    parts = ("recovered", row.subscription_id, module, found.record_id, found.kind,
             found.modified.isoformat())
    return NewEvent(hashlib.sha256("\x1f".join(parts).encode()).hexdigest(), event)

