"""One user's subscriptions compared with what Zoho lists, and put back as they should
be. Channels and webhooks the notifier did not create are not touched."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from notifier import app_types
from notifier.app_types import CRM, AppType
from notifier.database.models import STATUS_ACTIVE, STATUS_REAUTH_REQUIRED
from notifier.keeper import metrics
from notifier.keeper.gaps import Gaps
from notifier.keeper.records import Kept
from notifier.keeper.renewer import Renewer
from notifier.keeper.store import KeeperStore
from notifier.keeper.zoho_side import ZohoSide
from notifier.subscriptions import at_zoho
from servicekit import scopes
from servicekit.errors import MissingScope
from servicekit.scopes import covers

log = logging.getLogger(__name__)
# Expiries differ by Zoho's rounding to the second; more than this is a change.
EXPIRY_SLACK = timedelta(seconds=5)


class Reconciler:
    def __init__(
        self, store: KeeperStore, zoho: ZohoSide, gaps: Gaps, renewer: Renewer,
        ttl_seconds: float, forget: Callable[[str], None],
    ) -> None:
        self._store = store
        self._zoho = zoho
        self._gaps = gaps
        self._renewer = renewer
        self._ttl = timedelta(seconds=ttl_seconds)
        self._forget = forget

    async def check_connection(self, user_id: str, app: AppType) -> None:
        """The broker only (never Zoho): raises while the connection cannot work."""
        grant = await self._zoho.n.session(user_id, app, self._zoho.grant_deadline()).grant()
        needed = (scopes.CRM_READ, scopes.CRM_UPDATE) if app == CRM else (scopes.DESK_READ,)
        for scope in needed:
            if grant.scopes and not covers(grant.scopes, scope):
                raise MissingScope(scope, user_id=user_id, app=app_types.name(app))

    async def reconcile(self, user_id: str, app: AppType, now: datetime) -> int:
        """Returns how many subscriptions were repaired."""
        rows = await self._store.user_subscriptions(user_id, app)
        if not rows:
            return 0
        await self.check_connection(user_id, app)
        for row in rows:
            if row.status == STATUS_REAUTH_REQUIRED:
                # The connection works again: the subscription is checked like any other.
                await self._store.change(row.id, now, status=STATUS_ACTIVE, last_error=None)
        if app == CRM:
            return await self._crm(user_id, rows, now)
        return await self._desk(user_id, rows, now)

    async def _crm(self, user_id: str, rows: Sequence[Kept], now: datetime) -> int:
        channels = await self._zoho.crm_channels(user_id)
        repaired = 0
        healthy: list[tuple[str, int]] = []
        for row in rows:
            if row.lease_owner is not None and row.renew_at is not None and row.renew_at <= now:
                continue  # being renewed right now
            seen = channels.get(row.channel_id)
            problem = None
            if seen is None or (seen.expires_at is not None and seen.expires_at <= now):
                problem = "missing"
            elif seen.events != set(row.events) or seen.notify_url != self._zoho.crm_url(row):
                problem = "changed"
            if problem is None:
                if await self._crm_expiry(row, seen.expires_at if seen else None, now):
                    healthy.append((row.id, row.version))
                continue
            expiry = now + self._ttl
            outcome = "repaired"
            try:
                # Gone: enabled again (same id and token); changed: replaced whole.
                method = "POST" if problem == "missing" else "PUT"
                code = await self._zoho.crm_put(row, expiry, method=method)
            except Exception as failed:  # recorded; the next reconcile tries again
                log.warning("repair of %s failed: %s", row.id, type(failed).__name__)
                code = "FAILED"
            if code is not None:
                outcome = "failed"
            else:
                repaired += 1
                await self._store.change(
                    row.id, now, status=STATUS_ACTIVE, expires_at=expiry.replace(microsecond=0),
                    last_renewed_time=now, last_error=None,
                )
                await self._store.schedule(
                    row.id, renew_at=self._renewer.next_due(row, expiry, now), attempts=0,
                    verified_at=now,
                )
                await self._gaps.seen(row, since=row.verified_at, until=now)
            log.warning("crm channel of %s was %s at Zoho: %s", row.id, problem, outcome)
            metrics.REPAIRS.labels("crm", problem, outcome).inc()
        await self._store.mark_verified(healthy, now)
        return repaired

    async def _crm_expiry(self, row: Kept, expires_at: datetime | None, now: datetime) -> bool:
        """Zoho's expiry is the truth: a write without channel_expiry may have moved it
        earlier, and the renewal must come before it. True: as we had it (verified)."""
        if expires_at is None:
            return False
        if row.expires_at is None or abs(expires_at - row.expires_at) > EXPIRY_SLACK:
            log.warning("crm channel of %s: expiry at Zoho moved to %s", row.id, expires_at)
            metrics.REPAIRS.labels("crm", "expiry_moved", "rescheduled").inc()
            await self._store.change(row.id, now, expires_at=expires_at)
            await self._store.schedule(
                row.id, renew_at=self._renewer.next_due(row, expires_at, now), verified_at=now
            )
            return False
        return True

    async def _desk(self, user_id: str, rows: Sequence[Kept], now: datetime) -> int:
        webhooks = await self._zoho.desk_webhooks(user_id)
        repaired = 0
        verified: list[tuple[str, int]] = []
        for row in rows:
            seen = webhooks.get(row.zoho_id or "")
            problem = None
            if seen is None:
                problem = "missing"
            elif not seen.is_enabled:
                problem = "disabled"
            elif set(seen.subscriptions) != set(row.events) or not self._url_is_ours(
                row, seen.url
            ):
                problem = "changed"
            if problem is None:
                verified.append((row.id, row.version))
                continue
            outcome = "repaired"
            try:
                await self._desk_repair(row, problem, now)
                repaired += 1
                verified.append((row.id, row.version))
                await self._gaps.seen(row, since=row.verified_at, until=now)
            except Exception as failed:  # recorded; the next reconcile tries again
                log.warning("repair of %s failed: %s", row.id, type(failed).__name__)
                outcome = "failed"
            log.warning("desk webhook of %s was %s at Zoho: %s", row.id, problem, outcome)
            metrics.REPAIRS.labels("desk", problem, outcome).inc()
        await self._store.mark_verified(verified, now)
        return repaired

    def _url_is_ours(self, row: Kept, url: str) -> bool:
        prefix = self._zoho.desk_url_prefix(row)
        if not url.startswith(prefix):
            return False
        return at_zoho.secret_matches(url[len(prefix):], row.secret_digest)

    async def _desk_repair(self, row: Kept, problem: str, now: datetime) -> None:
        # Only the secret's digest is kept, so the URL is rebuilt with a fresh secret.
        secret = at_zoho.new_secret()
        old_digest = row.secret_digest
        await self._store.change(row.id, now,
                                 secret_digest=at_zoho.secret_digest(secret))
        self._forget(row.id)
        body = self._zoho.desk_body(row, secret)
        deadline = self._zoho.call_deadline()
        try:
            if problem == "missing":
                webhook = await self._zoho.n.desk_create(row.user_id, body, deadline)
                await self._store.change(
                    row.id, now, zoho_id=webhook.id,
                    status=STATUS_ACTIVE, last_error=None,
                )
            else:
                await self._zoho.n.desk_update(row.user_id, row.zoho_id or "", body, deadline)
        except BaseException:
            await self._store.change(row.id, now,
                                     secret_digest=old_digest)
            raise
        finally:
            self._forget(row.id)
