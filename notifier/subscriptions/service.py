"""Subscriptions' domain core: create at Zoho (pointing at the ingress, with a fresh
secret), read, list and delete (at Zoho too). The row is written before Zoho is asked,
because Desk checks the webhook URL during the create and the ingress must know it."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from notifier import app_types
from notifier.app_types import CRM
from notifier.database.models import STATUS_DELETED, STATUS_PENDING
from notifier.notifications import Notifications
from notifier.queries import SubscriptionQuery
from notifier.subscriptions import at_zoho, validation
from notifier.subscriptions.records import Subscription
from notifier.subscriptions.store import SubscriptionStore
from servicekit import page_tokens, scopes
from servicekit.deadline import Deadline
from servicekit.errors import (
    InvalidArgument,
    MissingScope,
    NotFound,
    TooManySubscriptions,
    Unavailable,
    ZohoRejected,
)
from servicekit.scopes import covers
from servicekit.sealing import KeyRing

log = logging.getLogger(__name__)

# A create's calls to Zoho end by then, whatever the caller's deadline: the keeper
# resolves a row still pending after keeper/half_made.py's PENDING_GRACE (60 s) as left
# by a crash, and must not race a create still in flight.
CREATE_SECONDS = 45.0


def _not_found(subscription_id: str) -> NotFound:
    return NotFound(
        f"subscription {subscription_id} not found",
        metadata={"subscription_id": subscription_id},
    )


class Subscriptions:
    def __init__(
        self,
        store: SubscriptionStore,
        notifications: Notifications,
        keys: KeyRing,
        *,
        public_url: Callable[[], str],
        channel_ttl_seconds: float,
        forget: Callable[[str], None],
        max_per_user: int = 200,
    ) -> None:
        self._store = store
        self._n = notifications
        self._keys = keys
        self.keys = keys  # the keeper opens channel tokens to renew them
        # Known once the ingress is bound (its address is the default public URL).
        self._public_url = public_url
        self._ttl = timedelta(seconds=channel_ttl_seconds)
        # Tells this process's ingress at once that a subscription changed.
        self._forget = forget
        self._max_per_user = max_per_user

    async def _check_scope(
        self, user_id: str, app_type: int, deadline: Deadline
    ) -> None:
        needed = scopes.CRM_CREATE if app_type == CRM else scopes.DESK_CREATE
        grant = await self._n.session(user_id, app_type, deadline).grant()
        # No scopes recorded: unknown, Zoho's own answer will tell.
        if grant.scopes and not covers(grant.scopes, needed):
            raise MissingScope(needed, user_id=user_id, app=app_types.name(app_type))

    async def create(
        self, request: SubscriptionQuery, deadline: Deadline
    ) -> Subscription:
        # A cheap refusal first (no broker call, no row) for a user already at the cap.
        if await self._store.count(request.user_id) >= self._max_per_user:
            raise TooManySubscriptions(request.user_id, self._max_per_user)
        left = deadline.left()
        deadline = Deadline(CREATE_SECONDS if left is None else min(left, CREATE_SECONDS))
        await self._check_scope(request.user_id, request.app_type, deadline)
        subscription_id = "sub_" + secrets.token_hex(12)
        secret = at_zoho.new_secret()
        common = {
            "id": subscription_id,
            "user_id": request.user_id,
            "app_type": request.app_type,
            "events": list(request.events),
            "status": STATUS_PENDING,
            "secret_digest": at_zoho.secret_digest(secret),
            "notify_on_related_action": request.notify_on_related_action,
            "return_affected_field_values": request.return_affected_field_values,
        }
        try:
            if request.app_type == CRM:
                await self._create_crm(request, common, secret, deadline)
            else:
                await self._create_desk(request, common, secret, deadline)
        except BaseException:
            await self._store.remove(subscription_id)
            self._forget(subscription_id)
            raise
        self._forget(subscription_id)
        row = await self._store.get(request.user_id, subscription_id)
        assert row is not None
        return row

    async def _create_crm(
        self,
        request: SubscriptionQuery,
        common: dict[str, object],
        secret: str,
        deadline: Deadline,
    ) -> None:
        subscription_id = str(common["id"])
        # Zoho takes the caller's channel id: random digits, unique here by the index.
        channel_id = str(10**17 + secrets.randbelow(9 * 10**17))
        expiry = (datetime.now(UTC) + self._ttl).replace(microsecond=0)
        await self._store.insert(
            **common,
            cap=self._max_per_user,
            zoho_id=channel_id,
            secret_sealed=self._keys.encrypt(
                secret, context=at_zoho.sealing_context(subscription_id)
            ),
        )
        item = at_zoho.crm_watch_item(
            public_url=self._public_url(),
            subscription_id=subscription_id,
            channel_id=channel_id,
            events=request.events,
            expiry=expiry,
            token=secret,
            notify_on_related_action=request.notify_on_related_action,
            return_affected_field_values=request.return_affected_field_values,
        )
        results = await self._n.crm_write(
            request.user_id, "POST", [item], scope=scopes.CRM_CREATE, deadline=deadline
        )
        failed = [r for r in results if r.status != "success"]
        if failed or not results:
            code = failed[0].code if failed else "NO_RESULT"
            raise ZohoRejected(
                f"Zoho refused the channel: {code}"
                + (f": {failed[0].message}" if failed and failed[0].message else ""),
                zoho_code=code,
                http_status=400,
            )
        await self._activate(
            subscription_id, expires_at=expiry, last_renewed_time=datetime.now(UTC)
        )

    async def _create_desk(
        self,
        request: SubscriptionQuery,
        common: dict[str, object],
        secret: str,
        deadline: Deadline,
    ) -> None:
        subscription_id = str(common["id"])
        await self._store.insert(**common, cap=self._max_per_user)
        body = at_zoho.desk_webhook_body(
            public_url=self._public_url(), subscription_id=subscription_id,
            events=request.events, secret=secret,
        )
        webhook, org_id, origin = await self._n.desk_create_in_org(
            request.user_id, body, deadline
        )
        await self._activate(
            subscription_id,
            zoho_id=webhook.id,
            desk_org_id=org_id,
            jwks_url=at_zoho.desk_jwks_url(origin),
            last_renewed_time=datetime.now(UTC),
        )

    async def _activate(self, subscription_id: str, **values: object) -> None:
        if not await self._store.activate(subscription_id, **values):
            raise Unavailable(
                "the subscription was given up while Zoho was answering (it took longer "
                f"than {CREATE_SECONDS:g} s): create it again",
                metadata={"subscription_id": subscription_id},
            )

    async def get(self, user_id: str, subscription_id: str) -> Subscription:
        row = await self._store.get(user_id, subscription_id)
        if row is None or row.status == STATUS_PENDING:
            raise _not_found(subscription_id)
        return row

    async def page(
        self, user_id: str, page_size: int, page_token: str
    ) -> tuple[Sequence[Subscription], str]:
        limit = page_size or validation.DEFAULT_PAGE_SIZE
        after = validation.page_start(page_token)
        if after is None:
            raise InvalidArgument([("page_token", page_tokens.NOT_A_TOKEN)])
        rows = await self._store.page(user_id, after, limit + 1)
        shown = [row for row in rows[:limit] if row.status != STATUS_PENDING]
        return shown, (page_tokens.encode(rows[limit - 1].id) if len(rows) > limit else "")

    async def delete(self, user_id: str, subscription_id: str, deadline: Deadline) -> None:
        row = await self.get(user_id, subscription_id)
        try:
            if row.app_type == CRM:
                results = await self._n.crm_disable_channels(user_id, [row.channel_id], deadline)
                refused = [
                    r for r in results if r.status != "success" and r.code != "NOT_SUBSCRIBED"
                ]
                if refused:
                    raise ZohoRejected(
                        f"Zoho refused to disable the channel: {refused[0].code}",
                        zoho_code=refused[0].code,
                        http_status=400,
                    )
            elif row.zoho_id:
                await self._n.desk_delete(user_id, row.zoho_id, deadline)
        except NotFound:
            pass  # already gone at Zoho: the row goes too
        except ZohoRejected as failed:
            if failed.zoho_code != "NOT_SUBSCRIBED":
                raise
        # Kept as deleted: a Desk delivery to it is then answered 410 (Desk drops it).
        await self._store.change(
            subscription_id,
            status=STATUS_DELETED,
            deleted_at=datetime.now(UTC),
            secret_sealed=None,
        )
        self._forget(subscription_id)

