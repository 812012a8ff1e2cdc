"""Checks of subscription requests: every bad field named at once."""

from __future__ import annotations

from notifier.validation import check_crm_events
from servicekit import identifiers, page_tokens
from servicekit.errors import Violations
from servicekit.validation import check_app_type, check_user_id
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

MAX_DESK_EVENTS = 20
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
DESK_EVENTS = frozenset(
    f"{entity}_{action}"
    for entity, actions in {
        "Ticket": (
            "Add", "Update", "Delete", "Approval_Add", "Approval_Update", "Thread_Add",
            "Comment_Add", "Comment_Update", "Attachment_Add", "Attachment_Update",
            "Attachment_Delete",
        ),
        "Contact": ("Add", "Update", "Delete"),
        "Account": ("Add", "Update", "Delete"),
        "Agent": ("Add", "Update", "Delete"),
        "Department": ("Add", "Update"),
        "Task": ("Add", "Update", "Delete"),
        "Call": ("Add", "Update", "Delete"),
        "Event": ("Add", "Update", "Delete"),
        "TimeEntry": ("Add", "Update", "Delete"),
        "Article": ("Add", "Update", "Delete"),
    }.items()
    for action in actions
)


def page_start(page_token: str) -> str | None:
    """The subscription id a page starts after ("" for the first page), None if the token
    is not ours. Tokens are opaque (servicekit.page_tokens, as ListConnections'); a raw
    subscription id is still read as one, as notifiers before them handed out."""
    if identifiers.is_subscription_id(page_token):
        return page_token
    return page_tokens.read(page_token, identifiers.is_subscription_id)


def check_subscription_id(v: Violations, value: str, *, required: bool) -> None:
    if (value or required) and not identifiers.is_subscription_id(value):
        v.add("subscription_id", "required: a subscription id (sub_ and 24 hex digits)"
              if required else "not a subscription id (sub_ and 24 hex digits)")


def create_request(request: notifier_pb2.CreateSubscriptionRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    check_app_type(v, request.app_type, allow_unspecified=False)
    events = list(request.events)
    if not events:
        v.add("events", "at least one event")
    if len(set(events)) != len(events):
        v.add("events", "an event is named twice")
    if request.app_type == common_pb2.APP_TYPE_CRM:
        # EnableCrmChannels' rule, and only modules Zoho notifies on.
        check_crm_events(v, "events", events, known_modules=True)
    elif request.app_type == common_pb2.APP_TYPE_DESK:
        if len(events) > MAX_DESK_EVENTS:
            v.add("events", f"at most {MAX_DESK_EVENTS} events")
        for i, event in enumerate(events):
            if event not in DESK_EVENTS:
                v.add(f"events[{i}]", "not a Desk event name (Ticket_Add, Contact_Update, ...)")
        if request.notify_on_related_action:
            v.add("notify_on_related_action", "CRM only")
        if request.return_affected_field_values:
            v.add("return_affected_field_values", "CRM only")
    v.raise_if_any()


def one_request(
    request: notifier_pb2.GetSubscriptionRequest | notifier_pb2.DeleteSubscriptionRequest,
) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    check_subscription_id(v, request.subscription_id, required=True)
    v.raise_if_any()


def list_request(request: notifier_pb2.ListSubscriptionsRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    if not 0 <= request.page_size <= MAX_PAGE_SIZE:
        v.add("page_size", f"must be between 0 ({DEFAULT_PAGE_SIZE}) and {MAX_PAGE_SIZE}")
    if page_start(request.page_token) is None:
        v.add("page_token", page_tokens.NOT_A_TOKEN)
    v.raise_if_any()
