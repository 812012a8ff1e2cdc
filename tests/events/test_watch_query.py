"""A WatchNotifications request read once into a WatchQuery (notifier/events/
watch_query.py): the cursor as a position, every bad field named at once."""

from __future__ import annotations

import pytest

from notifier.events.cursor import format_cursor
from notifier.events.watch_query import WatchQuery, watch_query
from servicekit.errors import InvalidArgument
from zoho.notifier.v1 import notifier_pb2 as pb

SUB = "sub_" + "b" * 24


def test_the_cursor_is_read_into_a_position() -> None:
    request = pb.WatchNotificationsRequest(
        user_id="demo", app_type=1, subscription_id=SUB, after_cursor=format_cursor(300))
    assert watch_query(request) == WatchQuery("demo", 1, SUB, after=300)


def test_no_cursor_is_no_position() -> None:
    assert watch_query(pb.WatchNotificationsRequest(from_earliest=True)) == WatchQuery(
        "", from_earliest=True)


def test_every_bad_field_is_named() -> None:
    request = pb.WatchNotificationsRequest(
        user_id=" demo", app_type=99, subscription_id="sub_x",
        after_cursor="00000000000000zz", from_earliest=True)
    with pytest.raises(InvalidArgument) as caught:
        watch_query(request)
    named = [field for field, _ in caught.value.violations]
    assert sorted(named) == sorted(
        ["user_id", "app_type", "subscription_id", "after_cursor", "from_earliest"])
