"""What the keeper asks Zoho, through the notifier's own clients (token handling,
retries and classification of answers are theirs)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notifier import crm
from notifier.app_types import CRM, DESK
from notifier.notifications import Notifications
from notifier.queries import ListQuery
from notifier.subscriptions import at_zoho
from notifier.subscriptions.records import Subscription
from servicekit import scopes
from servicekit.deadline import Deadline
from servicekit.errors import ZohoRejected
from servicekit.sealing import KeyRing
from zoho.notifier.v1 import notifier_pb2

# A renewal PUT carries as many channels as any CRM write may (crm.py; docs/zoho.md).
WRITE_ITEMS = crm.MAX_WRITE_ITEMS


@dataclass
class ZohoChannel:
    """One CRM channel as Zoho lists it (its items merged across modules)."""

    events: set[str]
    notify_url: str
    expires_at: datetime | None


class ZohoSide:
    def __init__(
        self,
        notifications: Notifications,
        keys: KeyRing,
        public_url: Callable[[], str],
        *,
        call_seconds: float,
        grant_seconds: float,
    ) -> None:
        self.n = notifications
        self._keys = keys
        self._public_url = public_url
        self._call_seconds = call_seconds
        self._grant_seconds = grant_seconds

    def call_deadline(self) -> Deadline:
        """For one call to Zoho (KeeperConfig.zoho_call_seconds)."""
        return Deadline(self._call_seconds)

    def grant_deadline(self) -> Deadline:
        """For one question to the broker (KeeperConfig.grant_check_seconds)."""
        return Deadline(self._grant_seconds)

    def crm_item(self, row: Subscription, expiry: datetime) -> dict[str, Any]:
        """The channel as the create made it (at_zoho.py), with a new expiry."""
        return at_zoho.crm_watch_item(
            public_url=self._public_url(),
            subscription_id=row.id,
            channel_id=row.channel_id,
            events=row.events,
            expiry=expiry,
            token=self._keys.decrypt(
                row.secret_sealed or "", context=at_zoho.sealing_context(row.id)
            ),
            notify_on_related_action=row.notify_on_related_action,
            return_affected_field_values=row.return_affected_field_values,
        )

    def crm_url(self, row: Subscription) -> str:
        return at_zoho.crm_notify_url(self._public_url(), row.id)

    async def crm_put(
        self, row: Subscription, expiry: datetime, *, method: str = "PUT"
    ) -> str | None:
        """None on success, else Zoho's code for the item (NOT_SUBSCRIBED: gone)."""
        return (await self.crm_write(row.user_id, [row], expiry, method=method))[0]

    async def crm_write(
        self, user_id: str, rows: Sequence[Subscription], expiry: datetime, *, method: str = "PUT"
    ) -> list[str | None]:
        """One call for up to WRITE_ITEMS of a user's channels: per row, None on success or
        Zoho's code for its item (a 207 answers some of each)."""
        scope = scopes.CRM_CREATE if method == "POST" else scopes.CRM_UPDATE
        results = await self.n.crm_write(
            user_id, method, [self.crm_item(row, expiry) for row in rows], scope=scope,
            deadline=self.call_deadline(),
        )
        if not results:
            raise ZohoRejected("Zoho answered no result", zoho_code="NO_RESULT", http_status=200)
        codes: list[str | None] = ["NO_RESULT"] * len(rows)
        for result in results:
            if 0 <= result.index < len(rows):
                codes[result.index] = (
                    None if result.status == "success" else (result.code or "ERROR")
                )
        return codes

    async def crm_channels(self, user_id: str) -> dict[str, ZohoChannel]:
        found: dict[str, ZohoChannel] = {}
        request = ListQuery(user_id=user_id, app_type=CRM)
        async for page in self.n.stream_pages(request, self.call_deadline()):
            for item in page:
                channel = item.crm
                expiry = (
                    channel.channel_expiry.ToDatetime(tzinfo=UTC)
                    if channel.HasField("channel_expiry")
                    else None
                )
                seen = found.setdefault(
                    channel.channel_id, ZohoChannel(set(), channel.notify_url, expiry)
                )
                seen.events.update(channel.events)
                if expiry is not None and (seen.expires_at is None or expiry < seen.expires_at):
                    seen.expires_at = expiry
        return found

    async def desk_webhooks(self, user_id: str) -> dict[str, notifier_pb2.DeskWebhook]:
        request = ListQuery(user_id=user_id, app_type=DESK)
        found: dict[str, notifier_pb2.DeskWebhook] = {}
        async for page in self.n.stream_pages(request, self.call_deadline()):
            for item in page:
                found[item.desk.id] = item.desk
        return found

    def desk_body(self, row: Subscription, secret: str) -> dict[str, Any]:
        """As the subscription's create sent it (at_zoho.py), with `secret` in the URL."""
        return at_zoho.desk_webhook_body(
            public_url=self._public_url(), subscription_id=row.id, events=row.events,
            secret=secret,
        )

    def desk_url_prefix(self, row: Subscription) -> str:
        return at_zoho.desk_webhook_url(self._public_url(), row.id, "")

