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

# Change capture's reads (notifier/capture/, docs/zoho.md section 6). The CRM module scope
# may also be granted per module (ZohoCRM.modules.Leads.READ): crm_read_missing.
CRM_MODULES_READ = "ZohoCRM.modules.READ"
CRM_COQL_READ = "ZohoCRM.coql.READ"
CRM_ORG_READ = "ZohoCRM.org.READ"
CRM_SETTINGS_READ = "ZohoCRM.settings.fields.READ"
DESK_SEARCH_READ = "Desk.search.READ"
# Desk's read scope per resource change capture reads back.
DESK_RESOURCE_READ = {
    "Ticket": "Desk.tickets.READ",
    "Contact": "Desk.contacts.READ",
    "Account": "Desk.contacts.READ",
}


def crm_read_missing(granted: Sequence[str], module: str) -> str | None:
    """The scope a read-back of `module` lacks (None: it may read, or the grant's scopes
    are unknown and Zoho's own answer will tell)."""
    if not granted:
        return None
    if covers(granted, CRM_MODULES_READ) or covers(granted, f"ZohoCRM.modules.{module}.READ"):
        return None
    return CRM_MODULES_READ
