"""Secrets the notifier minted never leave it in an answer: a Desk webhook the notifier
created for a subscription carries the subscription's path secret in its URL
(subscriptions/at_zoho.py `desk_webhook_url`), and Desk hands that URL to anyone who can list
the user's webhooks. Shown to a caller, the URL has the secret masked; only the keeper
(which compares it with the stored digest) reads Desk's copy whole.

Masked by shape (`.../callbacks/desk/sub_<id>/<secret>`, whatever the host), not only on
the current NOTIFIER_PUBLIC_URL: a webhook made before the public URL changed carries
its secret as well. The CRM channel token is not streamed at all (converters.py)."""

from __future__ import annotations

from collections.abc import Iterable

from servicekit.logs import redact
from zoho.common.v1 import common_pb2
from zoho.notifier.v1 import notifier_pb2

_DESK = common_pb2.APP_TYPE_DESK


def mask_webhook(webhook: notifier_pb2.DeskWebhook) -> notifier_pb2.DeskWebhook:
    """`webhook` with any minted secret in its URL masked (changed in place)."""
    if webhook.url:
        webhook.url = redact(webhook.url)
    return webhook


def mask_notifications(items: Iterable[notifier_pb2.Notification]) -> None:
    for item in items:
        if item.app_type == _DESK:
            mask_webhook(item.desk)
