"""Zoho OAuth scopes, the one place both services take them from: the names each
call needs, what a grant must hold per app, and which granted scope covers which.

An old refresh token never gains scopes without a new consent, so the broker reports
a missing scope up front, naming it, instead of as Zoho's 401 later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zoho.common.v1 import common_pb2

CRM_READ = "ZohoCRM.notifications.READ"
CRM_CREATE = "ZohoCRM.notifications.CREATE"
CRM_UPDATE = "ZohoCRM.notifications.UPDATE"
CRM_DELETE = "ZohoCRM.notifications.DELETE"

DESK_ORGS = "Desk.basic.READ"
DESK_READ = "Desk.webhooks.READ"
DESK_CREATE = "Desk.webhooks.CREATE"
DESK_UPDATE = "Desk.webhooks.UPDATE"
DESK_DELETE = "Desk.webhooks.DELETE"

# For each app: a list of requirements, each satisfied by any one of its scopes.
# Desk's webhooks scope has older names (docs/zoho.md section 3).
REQUIREMENTS: dict[int, list[tuple[str, ...]]] = {
    common_pb2.APP_TYPE_CRM: [(CRM_READ,)],
    common_pb2.APP_TYPE_DESK: [(DESK_READ, "Desk.events.READ", "Desk.settings.READ")],
}
# Without a stored org id, the notifier must look the org up, which needs this.
DESK_ORG_LOOKUP = DESK_ORGS


def covers(granted: Iterable[str], needed: str) -> bool:
    """`Service.resource.OP` is covered by itself or by `Service.resource.ALL`."""
    family = needed.rsplit(".", 1)[0].lower()
    wanted = {needed.lower(), f"{family}.all"}
    return any(scope.lower() in wanted for scope in granted)


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
