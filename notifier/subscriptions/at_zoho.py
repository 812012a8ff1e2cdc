"""What a subscription looks like at Zoho, written once: the CRM watch item, the Desk
webhook body, the callback URLs the ingress answers, and the secret they carry (minted
here, kept as a digest, sealed in its row for CRM renewals).

The create (service.py), the keeper's renewals and repairs (keeper/zoho_side.py,
reconciler.py) and the ingress (its routes and checks) all use these: if two of them
built a channel differently, the keeper would "repair" every channel back and forth."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

CRM_PATH = "/callbacks/crm/"
DESK_PATH = "/callbacks/desk/"
DESK_JWKS_PATH = "/.well-known/jwks.json"


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 characters: CRM takes a token of at most 50


def secret_digest(secret: str) -> str:
    # The secrets are 256 random bits: a plain digest cannot be reversed or guessed.
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(given: object, digest: str) -> bool:
    if not isinstance(given, str):
        return False
    return hmac.compare_digest(secret_digest(given), digest)


def sealing_context(subscription_id: str) -> str:
    """A sealed token opens only in its own row and column."""
    return f"notifier_subscriptions.secret_sealed:{subscription_id}"


def crm_notify_url(public_url: str, subscription_id: str) -> str:
    return f"{public_url}{CRM_PATH}{subscription_id}"


def desk_webhook_url(public_url: str, subscription_id: str, secret: str) -> str:
    """The secret is the last path segment: desk_webhook_url(..., "") is the prefix."""
    return f"{public_url}{DESK_PATH}{subscription_id}/{secret}"


def desk_jwks_url(desk_origin: str) -> str:
    return desk_origin + DESK_JWKS_PATH


def crm_watch_item(
    *,
    public_url: str,
    subscription_id: str,
    channel_id: str,
    events: Iterable[str],
    expiry: datetime,
    token: str,
    notify_on_related_action: bool,
    return_affected_field_values: bool,
) -> dict[str, Any]:
    """Every field, each time: a PUT resets what it leaves out (the expiry to an hour)."""
    return {
        "channel_id": channel_id,
        "events": list(events),
        "channel_expiry": expiry.replace(microsecond=0).isoformat(),
        "notify_url": crm_notify_url(public_url, subscription_id),
        "token": token,
        "notify_on_related_action": notify_on_related_action,
        "return_affected_field_values": return_affected_field_values,
    }


def desk_webhook_body(
    *, public_url: str, subscription_id: str, events: Iterable[str], secret: str
) -> dict[str, Any]:
    """Updates carry the record's state before the change (includePrevState)."""
    options: dict[str, object] = {"includePrevState": True}
    return {
        "name": f"zoho-connect {subscription_id}",
        "url": desk_webhook_url(public_url, subscription_id, secret),
        "description": "Live events for zoho-connect's notifier",
        "subscriptions": {
            event: (options if event.endswith("_Update") else None) for event in events
        },
        "isEnabled": True,
    }
