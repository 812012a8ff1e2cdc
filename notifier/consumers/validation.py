"""Checks of consumer requests: every bad field named at once (BadRequest)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from notifier.events.cursor import check_cursor
from servicekit import identifiers, page_tokens
from servicekit.errors import Violations
from servicekit.validation import check_app_type, check_timestamp, check_user_id
from zoho.notifier.v1 import notifier_pb2

# Matched whole (fullmatch): "name\n" is not a name.
CONSUMER_ID = re.compile(r"[a-z][a-z0-9-]{2,62}")
MIN_ACK_DEADLINE, MAX_ACK_DEADLINE = 10, 600
MAX_OUTSTANDING = 1000
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
# Cursors one Pull request may ack or nack: a request stays well under gRPC's 4 MB.
MAX_CURSORS_PER_REQUEST = 10_000


def _consumer_id(v: Violations, value: str) -> None:
    if not value:
        v.add("consumer_id", "required")
    elif not CONSUMER_ID.fullmatch(value):
        v.add("consumer_id", "must match [a-z][a-z0-9-]{2,62} (3 to 63 characters)")


def _start(v: Violations, which: str | None, request: notifier_pb2.CreateConsumerRequest
           | notifier_pb2.SeekConsumerRequest) -> None:
    if which == "start_time":
        check_timestamp(v, "start_time", request.start_time)
    elif which == "after_cursor":
        check_cursor(v, "after_cursor", request.after_cursor)


def create_request(request: notifier_pb2.CreateConsumerRequest) -> None:
    v = Violations()
    _consumer_id(v, request.consumer_id)
    if request.user_id:  # empty: every user's events
        check_user_id(v, request.user_id)
    check_app_type(v, request.app_type, allow_unspecified=True)
    if request.subscription_id and not identifiers.is_subscription_id(request.subscription_id):
        v.add("subscription_id", "not a subscription id this notifier gave out")
    _start(v, request.WhichOneof("start"), request)
    deadline = request.ack_deadline_seconds
    if deadline and not MIN_ACK_DEADLINE <= deadline <= MAX_ACK_DEADLINE:
        v.add("ack_deadline_seconds",
              f"must be between {MIN_ACK_DEADLINE} and {MAX_ACK_DEADLINE} (0: 60), got {deadline}")
    v.raise_if_any()


def one_request(request: notifier_pb2.GetConsumerRequest | notifier_pb2.DeleteConsumerRequest
                ) -> None:
    v = Violations()
    _consumer_id(v, request.consumer_id)
    v.raise_if_any()


def list_request(request: notifier_pb2.ListConsumersRequest) -> None:
    v = Violations()
    if not 0 <= request.page_size <= MAX_PAGE_SIZE:
        v.add("page_size", f"must be between 0 ({DEFAULT_PAGE_SIZE}) and {MAX_PAGE_SIZE}")
    v.raise_if_any()


def page_after(page_token: str) -> str:
    """The consumer id a page starts after: opaque tokens, as ListConnections' and
    ListSubscriptions' (servicekit/page_tokens.py)."""
    return page_tokens.decode(page_token, lambda value: bool(CONSUMER_ID.fullmatch(value)))


def seek_request(request: notifier_pb2.SeekConsumerRequest) -> None:
    v = Violations()
    _consumer_id(v, request.consumer_id)
    if request.WhichOneof("target") is None:
        v.add("target", "give from_earliest, start_time or after_cursor")
    _start(v, request.WhichOneof("target"), request)
    v.raise_if_any()


def pull_request(request: notifier_pb2.PullRequest, *, first: bool
                 ) -> tuple[list[int], list[int]]:
    """The request's ack and nack cursors, parsed; the first must name the consumer."""
    v = Violations()
    if first:
        if not request.consumer_id:
            v.add("consumer_id", "the first PullRequest must name the consumer")
        else:
            _consumer_id(v, request.consumer_id)
        if not 0 <= request.max_outstanding <= MAX_OUTSTANDING:
            v.add("max_outstanding",
                  f"must be between 1 and {MAX_OUTSTANDING} (0: 100), "
                  f"got {request.max_outstanding}")
    acks = _cursors(v, "ack_cursors", request.ack_cursors)
    nacks = _cursors(v, "nack_cursors", request.nack_cursors)
    v.raise_if_any()
    return acks, nacks


def _cursors(v: Violations, field: str, values: Sequence[str]) -> list[int]:
    if len(values) > MAX_CURSORS_PER_REQUEST:
        v.add(field, f"at most {MAX_CURSORS_PER_REQUEST} a request, got {len(values)}")
        return []
    parsed = []
    for i, value in enumerate(values):
        cursor = check_cursor(v, f"{field}[{i}]", value)
        if cursor is not None:
            parsed.append(cursor)
    return parsed
