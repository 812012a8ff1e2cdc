"""What a WatchNotifications call asks, checked and read once: which events (empty
fields match all) and where the watch starts (events/watch.py)."""

from __future__ import annotations

from dataclasses import dataclass

from notifier.events.cursor import check_cursor
from notifier.subscriptions.validation import check_subscription_id
from servicekit.errors import Violations
from servicekit.validation import check_app_type, check_user_id
from zoho.notifier.v1 import notifier_pb2


@dataclass(frozen=True)
class WatchQuery:
    user_id: str  # empty: every user's events
    app_type: int = 0
    subscription_id: str = ""
    after: int | None = None  # resume after this position (the caller's after_cursor)...
    from_earliest: bool = False  # ...or from the oldest retained event; else from the call


def watch_query(request: notifier_pb2.WatchNotificationsRequest) -> WatchQuery:
    """The request as a query; InvalidArgument naming every bad field at once."""
    v = Violations()
    if request.user_id:
        check_user_id(v, request.user_id)
    check_app_type(v, request.app_type, allow_unspecified=True)
    check_subscription_id(v, request.subscription_id, required=False)
    after = None
    if request.after_cursor:
        after = check_cursor(v, "after_cursor", request.after_cursor)
        if request.from_earliest:
            v.add("from_earliest", "give after_cursor or from_earliest, not both")
    v.raise_if_any()
    return WatchQuery(
        user_id=request.user_id,
        app_type=request.app_type,
        subscription_id=request.subscription_id,
        after=after,
        from_earliest=request.from_earliest,
    )
