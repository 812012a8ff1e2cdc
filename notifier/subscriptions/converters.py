"""Subscription rows to Subscription messages (never the secret), and requests to plain queries."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from notifier.database import models
from notifier.queries import SubscriptionQuery
from notifier.subscriptions.records import Subscription
from zoho.notifier.v1 import notifier_pb2

_STATUS = {
    models.STATUS_ACTIVE: notifier_pb2.SUBSCRIPTION_STATUS_ACTIVE,
    models.STATUS_REAUTH_REQUIRED: notifier_pb2.SUBSCRIPTION_STATUS_REAUTH_REQUIRED,
    models.STATUS_FAILING: notifier_pb2.SUBSCRIPTION_STATUS_FAILING,
}


def _stamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def create_query(request: notifier_pb2.CreateSubscriptionRequest) -> SubscriptionQuery:
    return SubscriptionQuery(
        user_id=request.user_id,
        app_type=request.app_type,
        events=tuple(request.events),
        notify_on_related_action=request.notify_on_related_action,
        return_affected_field_values=request.return_affected_field_values,
    )


def subscription(row: Subscription) -> notifier_pb2.Subscription:
    return notifier_pb2.Subscription(
        subscription_id=row.id,
        user_id=row.user_id,
        app_type=row.app_type,
        events=row.events,
        status=_STATUS.get(row.status, notifier_pb2.SUBSCRIPTION_STATUS_UNSPECIFIED),
        expires_at=_stamp(row.expires_at),
        last_renewed_time=_stamp(row.last_renewed_time),
        last_event_time=_stamp(row.last_event_time),
        last_error=row.last_error or "",
        created_time=_stamp(row.created_at),
        zoho_id=row.zoho_id or "",
        notify_on_related_action=row.notify_on_related_action,
        return_affected_field_values=row.return_affected_field_values,
        # Change capture's watermark; until its first read-back, the creation time.
        covered_until=_stamp(row.covered_until or row.created_at),
    )
