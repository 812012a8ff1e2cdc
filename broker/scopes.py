"""Which OAuth scopes a caller's app needs, checked against the stored grant.

An old refresh token never gains scopes without a new consent, so a missing
scope is reported up front, naming it, instead of as Zoho's 401 later.
"""

from __future__ import annotations

from collections.abc import Sequence

from servicekit.scopes import covers
from zoho.common.v1 import common_pb2

__all__ = ["DESK_ORG_LOOKUP", "REQUIREMENTS", "covers", "missing_scope"]

# For each app: a list of requirements, each satisfied by any one of its scopes.
# Desk's webhooks scope has older names (docs/zoho.md section 3).
REQUIREMENTS: dict[int, list[tuple[str, ...]]] = {
    common_pb2.APP_TYPE_CRM: [("ZohoCRM.notifications.READ",)],
    common_pb2.APP_TYPE_DESK: [("Desk.webhooks.READ", "Desk.events.READ", "Desk.settings.READ")],
}
# Without a stored org id, the notifier must look the org up, which needs this.
DESK_ORG_LOOKUP = "Desk.basic.READ"


def missing_scope(granted: Sequence[str], app_type: int, *, has_desk_org: bool) -> str | None:
    """The first scope the grant lacks for `app_type`, or None.

    An empty grant means the scopes are unknown (an import that named none and
    a Zoho answer that listed none): Zoho's own answer will tell then.
    """
    if not granted:
        return None
    for options in REQUIREMENTS.get(app_type, []):
        if not any(covers(granted, option) for option in options):
            return options[0]
    if app_type == common_pb2.APP_TYPE_DESK and not has_desk_org:
        if not covers(granted, DESK_ORG_LOOKUP):
            return DESK_ORG_LOOKUP
    return None
