"""Request checks: every bad field is named at once (INVALID_ARGUMENT with BadRequest)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from notifier import crm, desk
from notifier.converters import DESK_UPDATE_FIELDS
from notifier.queries import ListQuery
from servicekit import identifiers
from servicekit.errors import Violations
from servicekit.validation import check_clean_text, check_struct, check_timestamp, check_user_id
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

# Zoho's limit on the events of one CRM channel.
MAX_CRM_EVENTS = 10
# Zoho's standard modules that take notifications; custom ones are CustomModuleN.
CRM_MODULES = frozenset(
    {
        "Leads", "Contacts", "Accounts", "Deals", "Tasks", "Events", "Calls", "Products",
        "Quotes", "Sales_Orders", "Purchase_Orders", "Invoices", "Campaigns", "Vendors",
        "Price_Books", "Cases", "Solutions", "Notes",
    }
)
_CUSTOM_MODULE = re.compile(r"CustomModule[0-9]{1,4}")


def list_query(query: ListQuery) -> None:
    v = Violations()
    check_user_id(v, query.user_id)
    limit = 0
    if query.app_type == common_pb2.APP_TYPE_CRM:
        limit = crm.MAX_PAGE_SIZE
    elif query.app_type == common_pb2.APP_TYPE_DESK:
        limit = desk.MAX_PAGE_SIZE
        if query.module or query.channel_id:
            v.add("module" if query.module else "channel_id", "CRM only; Desk has no such filter")
    else:
        v.add("app_type", "must be APP_TYPE_CRM or APP_TYPE_DESK")
    if query.page_size < 0 or (limit and query.page_size > limit):
        v.add("page_size", f"must be between 0 (Zoho's maximum) and {limit or crm.MAX_PAGE_SIZE}")
    if query.module and not identifiers.is_module(query.module):
        v.add("module", "must be a CRM module API name (Leads, Deals, ...)")
    if query.channel_id and not identifiers.is_channel_id(query.channel_id):
        v.add("channel_id", "must be digits, at most 64")
    v.raise_if_any()


def crm_channels(
    user_id: str, channels: Sequence[notifier_pb2.CrmChannelSpec], *, complete: bool
) -> None:
    """`complete`: every channel needs events and a notify_url (enable, replace)."""
    v = Violations()
    check_user_id(v, user_id)
    if not channels:
        v.add("channels", "at least one channel")
    elif len(channels) > crm.MAX_WRITE_ITEMS:
        v.add("channels", f"at most {crm.MAX_WRITE_ITEMS} per call (Zoho's limit)")
    for i, channel in enumerate(channels):
        field = f"channels[{i}]"
        if not identifiers.is_channel_id(channel.channel_id):
            v.add(f"{field}.channel_id", "required: digits, at most 64")
        if complete and not channel.events:
            v.add(f"{field}.events", "at least one event")
        if complete and not channel.notify_url:
            v.add(f"{field}.notify_url", "required")
        check_crm_events(v, f"{field}.events", channel.events)
        if channel.notify_url and not identifiers.is_http_url(channel.notify_url):
            v.add(f"{field}.notify_url", "must be an http(s) URL")
        if channel.HasField("channel_expiry"):
            check_timestamp(v, f"{field}.channel_expiry", channel.channel_expiry)
        check_clean_text(v, f"{field}.token", channel.token)
    v.raise_if_any()


def check_crm_events(
    v: Violations, field: str, events: Sequence[str], *, known_modules: bool = False
) -> None:
    """The one rule for CRM event names: servicekit's whole-matched shape, at most 10.
    `known_modules` also refuses a module Zoho does not notify on: CreateSubscription
    makes the channel itself (a row, a secret, a Zoho call), while the channel RPCs pass
    Zoho's own per-item answer (INVALID_MODULE) back to the caller."""
    if len(events) > MAX_CRM_EVENTS:
        v.add(field, f"at most {MAX_CRM_EVENTS} events (Zoho's limit)")
    for j, event in enumerate(events):
        if not identifiers.is_crm_event(event):
            v.add(f"{field}[{j}]", "must be {Module}.{create|edit|delete|all}")
        elif known_modules and not is_notified_module(event.partition(".")[0]):
            v.add(f"{field}[{j}]", f"unknown CRM module {event.partition('.')[0]!r}")


def is_notified_module(module: str) -> bool:
    return module in CRM_MODULES or _CUSTOM_MODULE.fullmatch(module) is not None


def disable_events(request: notifier_pb2.DisableCrmEventsRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    if not identifiers.is_channel_id(request.channel_id):
        v.add("channel_id", "required: digits, at most 64")
    if not request.events:
        v.add("events", "at least one event")
    check_crm_events(v, "events", request.events)
    v.raise_if_any()


def disable_channels(request: notifier_pb2.DisableCrmChannelsRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    if not request.channel_ids:
        v.add("channel_ids", "at least one channel id")
    elif len(request.channel_ids) > crm.MAX_WRITE_ITEMS:
        v.add("channel_ids", f"at most {crm.MAX_WRITE_ITEMS} per call")
    for i, channel_id in enumerate(request.channel_ids):
        if not identifiers.is_channel_id(channel_id):
            v.add(f"channel_ids[{i}]", "digits, at most 64")
    v.raise_if_any()


def desk_webhook(
    user_id: str,
    spec: notifier_pb2.DeskWebhookSpec,
    *,
    webhook_id: str | None = None,
    update_fields: Sequence[str] = (),
) -> None:
    v = Violations()
    check_user_id(v, user_id)
    if webhook_id is not None and not identifiers.is_desk_id(webhook_id):
        v.add("webhook_id", "required: a Desk webhook id (digits)")
    unknown = [f for f in update_fields if f not in DESK_UPDATE_FIELDS]
    for name in unknown:
        v.add("update_fields", f"unknown field {name!r}; known: {', '.join(DESK_UPDATE_FIELDS)}")
    # An update checks only the fields it changes; a create needs them all.
    checked = set(update_fields) if update_fields else set(DESK_UPDATE_FIELDS)
    if "name" in checked and not spec.name.strip():
        v.add("webhook.name", "required")
    if "url" in checked and not identifiers.is_http_url(spec.url):
        v.add("webhook.url", "required: an http(s) URL")
    for name, text in (("name", spec.name), ("description", spec.description),
                       ("ignore_source_id", spec.ignore_source_id)):
        check_clean_text(v, f"webhook.{name}", text)
    for i, event in enumerate(spec.subscriptions):
        check_clean_text(v, f"webhook.subscriptions[{i}]", event)
    check_struct(v, "webhook.subscription_options", spec.subscription_options)
    if "subscriptions" in checked and not spec.subscriptions:
        v.add("webhook.subscriptions", "at least one event name")
    for name in spec.subscription_options.fields:
        if name not in spec.subscriptions:
            v.add("webhook.subscription_options", f"{name!r} is not in subscriptions")
    v.raise_if_any()


def delete_webhook(request: notifier_pb2.DeleteDeskWebhookRequest) -> None:
    v = Violations()
    check_user_id(v, request.user_id)
    if not identifiers.is_desk_id(request.webhook_id):
        v.add("webhook_id", "required: a Desk webhook id (digits)")
    v.raise_if_any()
