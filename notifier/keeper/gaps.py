"""Telling watchers that events may have been missed: a NotificationEvent with
operation "gap" and the two times, stored in the log like any event (so it is replayed
to a sync that resumes later, and fans out to every replica)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from notifier import app_types
from notifier.app_types import AppType
from notifier.events.log import NewEvent
from notifier.events.writer import EventWriter
from zoho.notifier.v1 import notifier_pb2

log = logging.getLogger(__name__)
GAP = "gap"


def _stamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


class Announced(Protocol):
    """What a gap notice names of its subscription: the keeper's records, change
    capture's cursor, the ingress's outage rows all have it."""

    @property
    def id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def app_type(self) -> AppType: ...


@dataclass(frozen=True, slots=True)
class Subscribed:
    """Just what a gap notice names: a subscription read for announcing alone."""

    id: str
    user_id: str
    app_type: AppType


class ReadBack(Protocol):
    """Change capture's `read_back`: the window `since`..`until` of `row` read back from
    Zoho instead of announced (notifier/capture/service.py)."""

    async def __call__(
        self, row: Announced, *, since: datetime | None, until: datetime
    ) -> None: ...


def gap_event(
    row: Announced, since: datetime, until: datetime, *, key: str = "", reason: str = "",
    details: Mapping[str, str] | None = None,
) -> NewEvent:
    """The gap notice for subscription `row` (id, user_id, app_type) over since..until;
    `key`: its dedupe key when the same window may be announced twice (a restart);
    `reason` (gap_reason): why the window could not be read back; `details`: that error's
    ErrorInfo metadata (MISSING_SCOPE: the `scope`), as the event's `values`."""
    event = notifier_pb2.NotificationEvent(
        subscription_id=row.id,
        user_id=row.user_id,
        app_type=row.app_type,
        module=app_types.name(row.app_type),
        operation=GAP,
        missed_from=_stamp(since),
        missed_until=_stamp(until),
        event_time=_stamp(until),
        gap_reason=reason,
    )
    if details:
        event.values.update(dict(details))
    key = key or f"gap:{row.id}:{int(since.timestamp())}:{int(until.timestamp())}"
    return NewEvent(key, event)


class Gaps:
    def __init__(self, writer: EventWriter) -> None:
        self._writer = writer
        # Change capture (notifier/capture/), when it runs: a gap the keeper sees is read
        # back at once, and announced only if it cannot be (SPEC, complete change capture).
        self.read_back: ReadBack | None = None

    async def seen(self, row: Announced, *, since: datetime | None, until: datetime) -> None:
        """The keeper saw a window callbacks may not cover (a lapse, a repair)."""
        if self.read_back is not None:
            await self.read_back(row, since=since, until=until)
        else:
            await self.emit(row, since=since, until=until)

    async def emit(
        self, row: Announced, *, since: datetime | None, until: datetime, reason: str = "",
        details: Mapping[str, str] | None = None,
    ) -> None:
        """A gap event: changes between the two times may be missing from the log;
        `reason` (gap_reason) says why they could not be read back, `details` (values)
        what its error names, such as the missing scope."""
        since = since or until
        await self._writer.append(
            [gap_event(row, since, until, reason=reason, details=details)]
        )
        log.warning(
            "subscription %s: events between %s and %s may have been missed%s",
            row.id, since.isoformat(), until.isoformat(),
            f" ({reason}: not read back yet)" if reason else "",
        )
