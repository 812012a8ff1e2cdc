"""One claimed window read back: the token session, the scopes it needs, the org whose
credits it spends, and where each page goes (CaptureRead: appended with the watermark,
under the fence)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from notifier import app_types
from notifier.app_types import CRM
from notifier.broker_client import BrokerToken
from notifier.capture import metrics
from notifier.capture.credits import CreditBudget
from notifier.capture.crm_reads import KEY_FIELDS, MAX_FIELDS, CrmReads
from notifier.capture.crm_window import read_module
from notifier.capture.desk_reads import DeskReads
from notifier.capture.desk_window import read_resource
from notifier.capture.found import Found, to_event
from notifier.capture.records import Watermark
from notifier.capture.store import CaptureStore, Claimed
from notifier.keeper.clock import Clock
from notifier.notifications import Notifications
from notifier.tokens import TokenSession
from servicekit import identifiers, scopes
from servicekit.deadline import Deadline
from servicekit.errors import DeskOrgUnresolved, MissingScope, ServiceError
from servicekit.origins import OriginPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")
# A read's token session and Zoho calls end within this (the lease is renewed per page).
READ_SECONDS = 600.0
FIELDS_TTL = 3600.0


class CaptureRead:
    """The window being read: its bounds, and `save`, which appends a page's events and
    moves the watermark in one transaction under the claim's fence."""

    def __init__(
        self, store: CaptureStore, claimed: Claimed, until: datetime, heard: set[str], *,
        lease: timedelta, wake_tail: Callable[[], None], clock: Clock, retention: timedelta,
    ) -> None:
        row = claimed.row
        self._store = store
        self._claimed = claimed
        self._lease = lease
        self._wake_tail = wake_tail
        self._clock = clock
        self.start: datetime = row.covered_until
        self.until = until
        self.covered: datetime = row.covered_until
        self.heard = heard
        # Creations told from here on: since the subscription began, and no older than the
        # event log keeps. An older creation's event, if one was told, is pruned, so dedupe
        # could not see it and every later edit would tell the record's creation again; a
        # creation no callback ever told that long ago arrives as the edit, with its values.
        self.creations_since: datetime = max(row.created_at, until - retention)
        self.deadline = Deadline(READ_SECONDS)
        self.recovered = 0
        self.org_key = ""
        # Set by the Reader once the org is known: the budget's spend and Zoho's count.
        self.spend_credits: Callable[[int], Awaitable[None]] | None = None
        self.remaining_seen: Callable[[int], Awaitable[None]] | None = None

    @property
    def row(self) -> Watermark:
        return self._claimed.row

    async def spend(self, credits: int) -> None:
        assert self.spend_credits is not None, "the org is known before any read"
        await self.spend_credits(credits)

    async def save(self, found: list[Found], covered: datetime | None) -> None:
        row = self._claimed.row
        events = [to_event(row, row.module, item) for item in found]
        covered = max(self.covered, covered) if covered else self.covered
        stored = await self._store.commit(
            self._claimed, events, covered, datetime.now(UTC),
            # Each page renews the claim, on the clock claims are made on (Zoho's).
            lease_until=self._clock.now() + self._lease,
        )
        self.covered = covered
        self.recovered += len(stored)
        if stored:
            self._wake_tail()

    async def remaining(self, credits: int | None) -> None:
        if credits is not None and self.remaining_seen is not None:
            await self.remaining_seen(credits)

    def malformed(self, what: str) -> None:
        metrics.MALFORMED.labels(app_types.name(self._claimed.row.app_type)).inc()
        log.warning("subscription %s: %s read back from %s (skipped)",
                    self._claimed.row.subscription_id, what, self._claimed.row.module)


class _OneCallAtATime(TokenSession):
    """The read's token session, each Zoho call under the user's lock."""

    def __init__(self, session: TokenSession, lock: asyncio.Lock) -> None:
        super().__init__(session._broker, session.user_id, session.app_type, session.deadline)
        self._lock = lock

    async def run(self, call: Callable[[BrokerToken], Awaitable[T]]) -> T:
        async with self._lock:
            return await super().run(call)


class Reader:
    def __init__(
        self, notifications: Notifications, crm: CrmReads, desk: DeskReads,
        policy: OriginPolicy, budget: CreditBudget, clock: Clock,
    ) -> None:
        self._notifications = notifications
        self._crm = crm
        self._desk = desk
        self._policy = policy
        self._budget = budget
        self._clock = clock
        # The keeper's per-user lock when it runs (Keeper.user_lock), else this one's.
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self.user_lock: Callable[[str, int], asyncio.Lock] = (
            lambda user, app: self._locks.setdefault((user, app), asyncio.Lock())
        )
        # (user, grant) -> the CRM org key; (user, grant, module) -> (fields, until).
        self._orgs: dict[tuple[str, str], str] = {}
        self._fields: dict[tuple[str, str, str], tuple[list[str], float]] = {}

    async def read(self, read: CaptureRead, *, sweeping: bool) -> str:
        """Reads the window; returns the outcome for metrics (read, low_credits)."""
        row = read.row
        session = _OneCallAtATime(
            self._notifications.session(row.user_id, row.app_type, read.deadline),
            self.user_lock(row.user_id, row.app_type),
        )
        grant = await session.grant()
        if row.app_type == CRM:
            read.org_key = await self._crm_org(session, grant, read)
        else:
            org_id = row.desk_org_id or grant.desk_org_id
            if not org_id or identifiers.desk_org_id(org_id) is None:
                raise DeskOrgUnresolved(0)  # no org stored nor on the grant
            read.org_key = f"desk:{org_id}"
        self._bind_budget(read)
        if sweeping and not await self._budget.sweeping_allowed(read.org_key, self._clock.now()):
            return "skipped_low_credits"
        if row.app_type == CRM:
            await self._read_crm(session, grant, read)
        else:
            await self._read_desk(session, grant, read)
        return "read"

    def _bind_budget(self, read: CaptureRead) -> None:
        org = read.org_key

        async def spend(credits: int) -> None:
            await self._budget.spend(org, credits, self._clock.now())
            metrics.CALLS.labels(org).inc()
            metrics.CREDITS.labels(org).inc(credits)

        async def seen(remaining: int) -> None:
            await self._budget.zoho_says(org, remaining, self._clock.now())

        read.spend_credits = spend
        read.remaining_seen = seen

    async def _crm_org(self, session: TokenSession, grant: BrokerToken, read: CaptureRead) -> str:
        """The CRM org's credit key: its id from /org where the grant may read it, else
        the connection (each then counts as its own org)."""
        user = session.user_id
        key = (user, grant.grant_id)
        if key in self._orgs:
            return self._orgs[key]
        fallback = f"crm:conn:{user}"
        org_key = fallback
        if not grant.scopes or scopes.covers(grant.scopes, scopes.CRM_ORG_READ):
            try:
                await self._budget.spend(fallback, 1, self._clock.now())
                org_id = await session.run(lambda g: self._crm.org_id(g, read.deadline))
                org_key = f"crm:{org_id}" if org_id else fallback
            except ServiceError as failed:
                log.info("CRM org of %s unreadable (%s): credits counted per connection",
                         user, failed.reason)
        self._orgs[key] = org_key
        return org_key

    async def _read_crm(
        self, session: TokenSession, grant: BrokerToken, read: CaptureRead
    ) -> None:
        row = read.row
        missing = scopes.crm_read_missing(grant.scopes, row.module)
        if missing:
            raise MissingScope(missing, user_id=row.user_id, app="crm")
        coql = not grant.scopes or scopes.covers(grant.scopes, scopes.CRM_COQL_READ)
        fields = list(KEY_FIELDS)
        if row.return_affected_field_values:
            fields = await self._field_names(session, read)
        await read_module(session.run, self._crm, read, row.module, fields, coql=coql)

    async def _field_names(self, session: TokenSession, read: CaptureRead) -> list[str]:
        """The key fields, then the module's others up to Zoho's 50; the key fields alone
        when the module's fields cannot be listed (values are then the key fields')."""
        row = read.row
        grant = await session.grant()
        key = (row.user_id, grant.grant_id, row.module)
        cached = self._fields.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        try:
            await read.spend(1)
            names = await session.run(
                lambda g: self._crm.field_names(g, row.module, read.deadline)
            )
        except ServiceError as failed:
            if failed.reason == "CREDITS_EXHAUSTED":
                raise
            log.info("fields of %s unreadable (%s): values read back are the key fields'",
                     row.module, failed.reason)
            names = []
        fields = list(KEY_FIELDS) + [n for n in names if n not in KEY_FIELDS]
        fields = fields[:MAX_FIELDS]
        self._fields[key] = (fields, time.monotonic() + FIELDS_TTL)
        return fields

    async def _read_desk(
        self, session: TokenSession, grant: BrokerToken, read: CaptureRead
    ) -> None:
        row = read.row
        for needed in (scopes.DESK_RESOURCE_READ[row.module], scopes.DESK_SEARCH_READ):
            if grant.scopes and not scopes.covers(grant.scopes, needed):
                raise MissingScope(needed, user_id=row.user_id, app="desk")
        origin = self._policy.desk_origin(grant.api_domain)
        org_id = read.org_key.removeprefix("desk:")
        await read_resource(session.run, self._desk, read, origin, org_id, row.module)
