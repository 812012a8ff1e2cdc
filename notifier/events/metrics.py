"""The event log's own figures: what it stores and how far behind it the watches are
(docs/operations.md, *Metrics*; the dashboard's *Ingress and event log* row)."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram

from zoho.notifier.v1 import notifier_pb2

APPENDED = Counter(
    "notifier_events_appended_total",
    "Events stored in the event log, duplicates not counted, by origin: callback (Zoho "
    "called the ingress), recovered (read back by change capture), notice (a gap notice)",
    ["origin"],
)
# From a watch at the head of the log (milliseconds) to one replaying a day of it.
WATCH_LAG = Histogram(
    "notifier_watch_lag_seconds",
    "How long the newest event of each batch a WatchNotifications stream has just written "
    "had been stored: near zero at the head of the log, large while a watch replays or its "
    "reader holds it back",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
             6 * 3600, 24 * 3600),
)

ORIGINS: dict[int, str] = {
    notifier_pb2.EVENT_ORIGIN_CALLBACK: "callback",
    notifier_pb2.EVENT_ORIGIN_RECOVERED: "recovered",
    notifier_pb2.EVENT_ORIGIN_UNSPECIFIED: "notice",
}


def observe_watch_lag(wire: bytes) -> None:
    """The lag of a batch a watch has just written, from its newest event (`wire`, as
    stored: received_time is when the log stored it). Parsed once per batch, about a
    microsecond, rather than a column more read and converted for every event."""
    stored = notifier_pb2.NotificationEvent.FromString(wire).received_time.ToNanoseconds()
    WATCH_LAG.observe(max(0.0, time.time() - stored / 1e9))
