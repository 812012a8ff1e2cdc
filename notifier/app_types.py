"""The contract's AppType as the notifier stores it, and the word it is named by.

Every notifier table holds `app_type` as the enum's number (migration n0006): the value
each request carries and WatchNotifications and the consumers filter the event log by,
fixed by SPEC (a renumbered enum would break every caller, so it is never renumbered).
The event log, the one large table, already held the number; the words lived only in
the small per-subscription tables, which the migration converted.

Metrics labels, log lines, callback URLs and error details say "crm" or "desk": `name`
is the one place a number becomes that word."""

from __future__ import annotations

from typing import TypeAlias

from zoho.common.v1 import common_pb2

AppType: TypeAlias = common_pb2.AppType.ValueType
CRM: AppType = common_pb2.APP_TYPE_CRM
DESK: AppType = common_pb2.APP_TYPE_DESK
_NAMES: dict[int, str] = {CRM: "crm", DESK: "desk"}


def name(app_type: int) -> str:
    """ "crm" or "desk"; KeyError for any other number (validation refuses them first)."""
    return _NAMES[app_type]
