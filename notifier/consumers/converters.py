"""Consumer requests to plain values, and consumers to Consumer messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from notifier.consumers.service import ConsumerView, Start
from notifier.consumers.store import ConsumerState
from notifier.events.cursor import format_cursor
from zoho.notifier.v1 import notifier_pb2

DEFAULT_ACK_DEADLINE_SECONDS = 60
DEFAULT_MAX_OUTSTANDING = 100


def _stamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def start_of(
    which: str | None,
    request: notifier_pb2.CreateConsumerRequest | notifier_pb2.SeekConsumerRequest,
) -> Start:
    """`which`: the set field of the request's start oneof (WhichOneof)."""
    if which == "from_earliest":
        return Start(from_earliest=request.from_earliest)
    if which == "start_time":
        return Start(start_time=request.start_time.ToDatetime(tzinfo=UTC))
    if which == "after_cursor":
        return Start(after_cursor=request.after_cursor)
    return Start()


def new_consumer(request: notifier_pb2.CreateConsumerRequest) -> ConsumerState:
    """The consumer asked for; its position and creation time are the service's."""
    return ConsumerState(
        id=request.consumer_id,
        user_id=request.user_id,
        app_type=request.app_type,
        subscription_id=request.subscription_id,
        ack_deadline_seconds=request.ack_deadline_seconds or DEFAULT_ACK_DEADLINE_SECONDS,
        read_through=0,
        acked_until=None,
        generation=0,
        expired_count=0,
        created_at=datetime.now(UTC),
    )


def consumer(view: ConsumerView) -> notifier_pb2.Consumer:
    state = view.state
    return notifier_pb2.Consumer(
        consumer_id=state.id,
        user_id=state.user_id,
        app_type=state.app_type,  # type: ignore[arg-type]
        subscription_id=state.subscription_id,
        ack_deadline_seconds=state.ack_deadline_seconds,
        acked_until=format_cursor(state.acked_until) if state.acked_until is not None else "",
        backlog=view.backlog,
        oldest_unacked_time=_stamp(view.oldest_unacked),
        expired_count=state.expired_count,
        created_time=_stamp(state.created_at),
    )
