"""Which changes a record read back stands for (notifier/capture/found.py kinds_of)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.capture.found import kinds_of
from notifier.events.dedupe import CREATED, EDITED

SUBSCRIBED = datetime(2026, 12, 7, 10, 0, 0, 700_000, tzinfo=UTC)
BOTH = {CREATED, EDITED}


def test_a_creation_in_the_subscriptions_own_second_is_a_creation() -> None:
    # Made at 10:00:00.9, after the subscription; Zoho says 10:00:00.
    created = SUBSCRIBED.replace(microsecond=0)
    assert kinds_of(BOTH, created, created, SUBSCRIBED) == [CREATED]


def test_a_record_from_an_earlier_second_edited_since_is_an_edit_only() -> None:
    created = SUBSCRIBED.replace(microsecond=0) - timedelta(seconds=1)
    modified = SUBSCRIBED + timedelta(seconds=5)
    assert kinds_of(BOTH, created, modified, SUBSCRIBED) == [EDITED]


def test_a_creation_edited_later_is_both_and_only_what_is_heard() -> None:
    created = SUBSCRIBED + timedelta(seconds=3)
    modified = created + timedelta(seconds=1)
    assert kinds_of(BOTH, created, modified, SUBSCRIBED) == [CREATED, EDITED]
    assert kinds_of({CREATED}, created, modified, SUBSCRIBED) == [CREATED]
    assert kinds_of({EDITED}, created, created, SUBSCRIBED) == []
