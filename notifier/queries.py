"""What the domain is asked, as plain values: the servicer turns each request into one
(notifier/converters.py), so notifications.py never sees a proto."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ListQuery:
    """One listing, item by item or page by page (both ask Zoho the same)."""

    user_id: str
    app_type: int  # the contract's AppType number (CRM or DESK)
    page_size: int = 0  # 0: Zoho's maximum
    module: str = ""  # CRM only
    channel_id: str = ""  # CRM only


@dataclass(frozen=True)
class SubscriptionQuery:
    """A subscription to make at Zoho, pointed at the ingress."""

    user_id: str
    app_type: int
    events: tuple[str, ...]
    notify_on_related_action: bool = False
    return_affected_field_values: bool = False

