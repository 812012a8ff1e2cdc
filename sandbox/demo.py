"""Generated content: the demo tenant, and bulk CRM channels / Desk webhooks for seeding.

Everything generated is deterministic given its inputs (apart from expiry times, which follow
the sandbox clock), so tests can assert on exact ids and orders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.clock import iso_millis_z, iso_with_offset
from sandbox.crm_store import WatchItem
from sandbox.demo_records import DEFAULT_DEMO_RECORDS, seed_records
from sandbox.desk_store import DeskOrg, Webhook
from sandbox.state import SandboxState

DEMO_CLIENT_ID = "1000.SANDBOX"
DEMO_CLIENT_SECRET = "sandbox-secret"
DEMO_USER = "demo"
DEMO_REFRESH_TOKEN = "1000.sandbox.demo-refresh"
DEMO_DESK_ORG_ID = "3981311"
DEMO_SCOPES = (
    "ZohoCRM.notifications.READ",
    "ZohoCRM.notifications.CREATE",
    "ZohoCRM.notifications.UPDATE",
    "ZohoCRM.notifications.DELETE",
    "ZohoCRM.users.READ",
    # Zoho's SDK reads /crm/v8/users and /crm/v8/org after refreshing; the demo must let it.
    "ZohoCRM.org.READ",
    "Desk.basic.READ",
    "Desk.webhooks.READ",
    # Reading records back (change capture): Get Records, deleted records, COQL, Desk search.
    "ZohoCRM.modules.READ",
    "ZohoCRM.coql.READ",
    "Desk.tickets.READ",
    "Desk.contacts.READ",
    "Desk.search.READ",
)
DEFAULT_CRM_ITEMS = 250
DEFAULT_DESK_WEBHOOKS = 5

# CRM module API names the sandbox knows, with stable module ids (Zoho's `resource_id`).
CRM_MODULES: dict[str, str] = {
    name: str(5725767000000002175 + i * 2)
    for i, name in enumerate(
        [
            "Leads",
            "Contacts",
            "Accounts",
            "Deals",
            "Tasks",
            "Events",
            "Calls",
            "Products",
            "Quotes",
            "Sales_Orders",
            "Purchase_Orders",
            "Invoices",
            "Campaigns",
            "Vendors",
            "Cases",
            "Solutions",
            "Notes",
        ]
    )
}
DEMO_MODULES = ("Leads", "Contacts", "Accounts", "Deals", "Tasks")
FIRST_CHANNEL_ID = 1000000068001
WEEK = 7 * 24 * 3600


@dataclass(frozen=True)
class DemoSizes:
    crm_items: int = DEFAULT_CRM_ITEMS
    desk_webhooks: int = DEFAULT_DESK_WEBHOOKS
    records: int = DEFAULT_DEMO_RECORDS  # per CRM module, and of Desk tickets and contacts


def watch_item(
    state: SandboxState,
    *,
    channel_id: str,
    module: str,
    events: list[str],
    notify_url: str,
    token: str | None,
    channel_expiry: str,
    notify_on_related_action: bool = True,
    return_affected_field_values: bool = False,
    fields: list[Any] | None = None,
    notification_condition: list[Any] | None = None,
) -> WatchItem:
    """A watch item exactly as `GET /crm/v8/actions/watch` returns it."""
    return {
        "channel_id": channel_id,
        "events": events,
        "channel_expiry": channel_expiry,
        "notify_url": notify_url,
        "token": token,
        "resource_uri": f"{state.origin}/crm/v8/{module}",
        "resource_id": CRM_MODULES[module],
        "resource_name": module,
        "notify_on_related_action": notify_on_related_action,
        "return_affected_field_values": return_affected_field_values,
        "fields": fields,
        # GET answers show null for both when nothing was set (the spec's examples).
        "notification_condition": notification_condition,
    }


def generate_watch_items(
    state: SandboxState,
    count: int,
    *,
    modules: list[str] | tuple[str, ...] = DEMO_MODULES,
    first_channel: int = FIRST_CHANNEL_ID,
) -> list[WatchItem]:
    """`count` items: consecutive channels, each subscribed to every module in turn."""
    expiry = iso_with_offset(state.clock.now() + WEEK)
    ops = ("create", "edit", "delete", "all")
    items = []
    for i in range(count):
        channel = str(first_channel + i // len(modules))
        module = modules[i % len(modules)]
        # Vary the events deterministically so clients cannot assume one shape.
        chosen = [f"{module}.{ops[(i + k) % 3]}" for k in range(1 + i % 3)]
        items.append(
            watch_item(
                state,
                channel_id=channel,
                module=module,
                events=chosen,
                notify_url=f"https://hooks.sandbox.example/crm/{channel}",
                token=f"verify-{channel}",
                channel_expiry=expiry,
                notify_on_related_action=i % 2 == 0,
                return_affected_field_values=i % 4 == 0,
                notification_condition=_demo_condition(module) if i % 7 == 3 else None,
            )
        )
    return items


def _demo_condition(module: str) -> list[dict[str, Any]]:
    # Shaped as the spec's GET example: a field_selection over two fields.
    fields = [("Last_Name", "554023000000000559"), ("Email", "554023000000000597")]
    return [
        {
            "field_selection": {
                "group_operator": "or",
                "group": [
                    {"field": {"api_name": n, "id": i}, "group_operator": None, "group": None}
                    for n, i in fields
                ],
            },
            "module": {"api_name": module, "id": CRM_MODULES[module]},
            "type": "field_selection",
        }
    ]


def webhook(
    state: SandboxState,
    *,
    name: str,
    url: str,
    subscriptions: dict[str, Any],
    description: str | None = None,
    ignore_source_id: str | None = None,
    is_enabled: bool = True,
    include_events_from: list[str] | None = None,
    created_by: str = "5725767000000411001",
) -> Webhook:
    """A Desk webhook as `GET /api/v1/webhooks/{id}` returns it (Webhook.json's
    webhookResponse: no modifiedBy)."""
    now = iso_millis_z(state.clock.now())
    return {
        "id": state.next_desk_id(),
        "name": name,
        "url": url,
        "description": description,
        "subscriptions": subscriptions,
        "ignoreSourceId": ignore_source_id,
        "isEnabled": is_enabled,
        "includeEventsFrom": list(include_events_from or []),
        "type": "CUSTOMER_WEBHOOK",
        "createdBy": created_by,
        "createdTime": now,
        "modifiedTime": now,
    }


def generate_webhooks(state: SandboxState, org: DeskOrg, count: int) -> list[Webhook]:
    events = (
        "Ticket_Add",
        "Ticket_Update",
        "Ticket_Thread_Add",
        "Ticket_Comment_Add",
        "Contact_Add",
    )
    made = []
    for i in range(count):
        first = events[i % len(events)]
        subs: dict[str, Any] = {first: None}
        if first == "Ticket_Update":
            subs[first] = {"departmentIds": [], "fields": ["status"], "includePrevState": True}
        elif first == "Ticket_Thread_Add":
            subs[first] = {"departmentIds": [], "direction": "in"}
        hook = webhook(
            state,
            name=f"Sandbox webhook {i + 1}",
            url=f"https://hooks.sandbox.example/desk/{org.id}/{i + 1}",
            subscriptions=subs,
            description=f"Generated webhook {i + 1}",
            is_enabled=i % 5 != 4,
        )
        org.put_webhook(hook)
        made.append(hook)
    return made


def add_desk_org(
    state: SandboxState,
    *,
    user: str,
    org_id: str | None = None,
    company_name: str | None = None,
    portal_name: str | None = None,
    edition: str = "ENTERPRISE",
) -> DeskOrg:
    owner = state.add_user(user)
    org_id = org_id or state.next_desk_id()
    org = state.desk_orgs.get(org_id)
    if org is None:
        org = DeskOrg(
            id=org_id,
            company_name=company_name or f"{user} company",
            portal_name=portal_name or f"{user}portal",
            edition=edition.upper(),
            is_default=not owner.desk_org_ids,
        )
        state.desk_orgs[org_id] = org
    if org_id not in owner.desk_org_ids:
        owner.desk_org_ids.append(org_id)
    return org


def seed_demo(
    state: SandboxState,
    *,
    crm_items: int = DEFAULT_CRM_ITEMS,
    desk_webhooks: int = DEFAULT_DESK_WEBHOOKS,
    records: int = DEFAULT_DEMO_RECORDS,
) -> None:
    state.add_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    user = state.add_user(DEMO_USER, "demo@sandbox.example")
    state.add_refresh_token(
        user=DEMO_USER,
        client_id=DEMO_CLIENT_ID,
        scopes=DEMO_SCOPES,
        token=DEMO_REFRESH_TOKEN,
    )
    for item in generate_watch_items(state, crm_items):
        user.crm.put(item)
    org = add_desk_org(
        state,
        user=DEMO_USER,
        org_id=DEMO_DESK_ORG_ID,
        company_name="Sandbox Demo Inc",
        portal_name="sandboxdemo",
    )
    org.is_default = True
    generate_webhooks(state, org, desk_webhooks)
    seed_records(state.records, user, org.id, records, state.clock.now())
