"""The keeper's loop, in every notifier replica: enrol new subscriptions, renew the CRM
channels that are due, reconcile users that are due, publish metrics. Replicas share
the work through leases on rows (store.py), so each renewal is done once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier import app_types
from notifier.app_types import CRM
from notifier.database.models import STATUS_REAUTH_REQUIRED
from notifier.events.writer import EventWriter
from notifier.keeper import metrics
from notifier.keeper.clock import Clock, FollowedClock, SystemClock
from notifier.keeper.config import KeeperConfig
from notifier.keeper.gaps import Gaps
from notifier.keeper.half_made import HalfMade
from notifier.keeper.outcomes import Kind, describe, kind_of, reason_of
from notifier.keeper.reconciler import Reconciler
from notifier.keeper.records import Kept, KeptUser
from notifier.keeper.renewer import Claimed, Renewer
from notifier.keeper.store import KeeperStore
from notifier.keeper.zoho_side import WRITE_ITEMS, ZohoSide
from notifier.notifications import Notifications
from notifier.subscriptions.records import Subscription
from servicekit.background import BackgroundTask
from servicekit.replica import replica_id
from servicekit.sealing import KeyRing

log = logging.getLogger(__name__)
SUMMARY_SECONDS = 5.0
ENROL_SECONDS = 1.0
# How often half-made subscriptions are looked for (one cheap query; Zoho is asked only
# about rows found): a hidden subscription must not wait for the hourly reconcile.
HALF_MADE_SECONDS = 5.0


class Keeper:
    def __init__(
        self,
        engine: AsyncEngine,
        notifications: Notifications,
        keys: KeyRing,
        writer: EventWriter,
        *,
        config: KeeperConfig,
        ttl_seconds: float,
        public_url: Callable[[], str],
        forget: Callable[[str], None],
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.owner = replica_id()
        self._http = httpx.AsyncClient()
        if clock is None:
            clock = (
                FollowedClock(config.clock_url, self._http) if config.clock_url else SystemClock()
            )
        self.clock = clock
        self.store = KeeperStore(engine)
        zoho = ZohoSide(
            notifications, keys, public_url,
            call_seconds=config.zoho_call_seconds, grant_seconds=config.grant_check_seconds,
        )
        self.gaps = Gaps(writer)
        self.renewer = Renewer(self.store, zoho, self.gaps, config, ttl_seconds)
        self.reconciler = Reconciler(
            self.store, zoho, self.gaps, self.renewer, ttl_seconds, forget
        )
        self.half_made = HalfMade(self.store, zoho, self.gaps, forget)
        self._limit = asyncio.Semaphore(config.concurrency)
        # One Zoho call per user at a time from this replica: CRM's concurrency limit is
        # per org, as low as 5 on the Free edition.
        self._user_locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._in_flight = 0
        self._peak = 0
        self._task = BackgroundTask("keeper")
        self._wake = asyncio.Event()
        self._summary_at = 0.0
        self._enrol_at = 0.0
        self._half_made_at = 0.0

    async def start(self) -> None:
        await self.clock.sync()
        now = self.clock.now()
        await self.store.enrol(now, self._before, self._period)
        await self.store.reconcile_all_now(now)
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)
        await self._http.aclose()

    def wake(self) -> None:
        """Look for due work now (tests, after moving the clock)."""
        self._wake.set()

    async def settle(self, limit: float = 30.0) -> None:
        """Until nothing is due and nothing is in flight (tests, benchmarks)."""
        async with asyncio.timeout(limit):
            quiet = 0
            while quiet < 2:
                await self.tick()
                if self._pending:
                    quiet = 0
                    await asyncio.gather(*list(self._pending.values()), return_exceptions=True)
                else:
                    quiet += 1

    @property
    def _before(self) -> timedelta:
        return timedelta(seconds=self.config.renew_before_seconds)

    @property
    def _period(self) -> timedelta:
        return timedelta(seconds=self.config.reconcile_seconds)

    async def _run(self) -> None:
        while True:
            try:
                # New subscriptions (an hour's expiry at least) wait a second at most.
                enrol = time.monotonic() >= self._enrol_at
                if enrol:
                    self._enrol_at = time.monotonic() + ENROL_SECONDS
                half_made = time.monotonic() >= self._half_made_at
                if half_made:
                    self._half_made_at = time.monotonic() + HALF_MADE_SECONDS
                await self.tick(enrol=enrol, half_made=half_made)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("keeper tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.tick_seconds)
            self._wake.clear()

    async def tick(self, *, enrol: bool = True, half_made: bool = True) -> None:
        await self.clock.sync()
        now = self.clock.now()
        if enrol:
            await self.store.enrol(now, self._before, self._period)
        if half_made:
            for pending in await self.half_made.due(now, self.config.concurrency * 4):
                key = f"half:{pending.id}"
                if key not in self._pending:
                    self._spawn(key, self._resolve_half_made(pending))
        room = self.config.concurrency * 4 - len(self._pending)
        if room > 0:
            for user in await self.store.due_users(now, room):
                key = f"user:{user.app_type}:{user.user_id}"
                if key not in self._pending:
                    self._spawn(key, self._reconcile_user(user))
        room = self.config.concurrency * 4 - len(self._pending)
        if room > 0:
            by_user: dict[str, list[Kept]] = {}
            for row in await self.store.due_renewals(now, room * WRITE_ITEMS):
                by_user.setdefault(row.user_id, []).append(row)
            for user_id, rows in by_user.items():
                key = f"renew:{user_id}"
                if key not in self._pending:
                    self._spawn(key, self._renew_user(user_id, rows))
        if time.monotonic() >= self._summary_at:
            self._summary_at = time.monotonic() + SUMMARY_SECONDS
            await self._publish(now)

    def _spawn(self, key: str, work: Any) -> None:
        task = asyncio.create_task(work)
        self._pending[key] = task
        task.add_done_callback(lambda _: self._pending.pop(key, None))

    def user_lock(self, user_id: str, app: int) -> asyncio.Lock:
        """One Zoho call per user and app at a time from this replica, the keeper's and
        change capture's together (CRM's calls-in-flight cap is per org)."""
        return self._user_locks.setdefault((user_id, app), asyncio.Lock())

    @contextlib.asynccontextmanager
    async def _calling(self, user_id: str, app: int) -> Any:
        lock = self.user_lock(user_id, app)
        async with lock, self._limit:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            metrics.IN_FLIGHT.set(self._in_flight)
            metrics.PEAK_IN_FLIGHT.set(self._peak)
            try:
                yield
            finally:
                self._in_flight -= 1
                metrics.IN_FLIGHT.set(self._in_flight)

    async def _renew_user(self, user_id: str, rows: list[Kept]) -> None:
        """All of a user's due channels: one claim, one pass, one finish."""
        async with self._calling(user_id, CRM):
            now = self.clock.now()  # the tick synced the clock just before
            until = now + timedelta(seconds=self.config.lease_seconds)
            fences = await self.store.claim_rows(
                [(row.id, row.version) for row in rows], self.owner, until, now
            )
            # Rows another replica holds, or that changed since they were read, are left.
            claimed = [
                Claimed(row, fences[row.id], took_over=row.lease_owner is not None)
                for row in rows if row.id in fences
            ]
            if not claimed:
                return
            outcomes = await self.renewer.renew_user(user_id, claimed, now)
        for outcome in outcomes:
            metrics.RENEWALS.labels(outcome).inc()

    async def _resolve_half_made(self, row: Subscription) -> None:
        async with self._calling(row.user_id, row.app_type):
            try:
                await self.half_made.resolve(row, self.clock.now())
            except Exception as failed:  # still refused meanwhile; the next scan retries
                log.warning("half-made subscription %s not resolved yet: %s", row.id,
                            describe(failed))

    async def _reconcile_user(self, row: KeptUser) -> None:
        async with self._calling(row.user_id, row.app_type):
            now = self.clock.now()  # the tick synced the clock just before
            until = now + timedelta(seconds=self.config.lease_seconds)
            fence = await self.store.claim_user(
                row.user_id, row.app_type, row.version, self.owner, until, now
            )
            if fence is None:
                return
            try:
                repaired = await self.reconciler.reconcile(row.user_id, row.app_type, now)
            except Exception as failed:
                await self._reconcile_failed(row, fence, now, failed)
                return
            await self.store.finish_user(
                row.user_id, row.app_type, fence, blocked=None, reconcile_at=now + self._period
            )
        metrics.RECONCILES.labels(
            app_types.name(row.app_type), "repaired" if repaired else "ok"
        ).inc()
        if row.blocked:
            log.info("user %s (%s) connected again: subscriptions kept again",
                     row.user_id, app_types.name(row.app_type))

    async def _reconcile_failed(
        self, row: KeptUser, fence: int, now: datetime, failed: BaseException
    ) -> None:
        kind = kind_of(failed)
        if kind is Kind.BLOCKED:
            # Nothing is asked of Zoho for this user until the broker's answer changes.
            await self.store.set_status(
                row.user_id, row.app_type, STATUS_REAUTH_REQUIRED, describe(failed), now
            )
            await self.store.finish_user(
                row.user_id, row.app_type, fence, blocked=reason_of(failed)[:32],
                reconcile_at=now + timedelta(seconds=self.config.blocked_probe_seconds),
            )
            outcome = "blocked"
        else:
            retry = min(self.config.reconcile_seconds, self.config.retry_base_seconds)
            await self.store.finish_user(
                row.user_id, row.app_type, fence,
                reconcile_at=now + timedelta(seconds=retry),
            )
            outcome = "retry"
            log.warning("reconcile of %s (%s) failed: %s", row.user_id,
                        app_types.name(row.app_type), describe(failed))
        metrics.RECONCILES.labels(app_types.name(row.app_type), outcome).inc()

    async def _publish(self, now: datetime) -> None:
        counts, soonest = await self.store.summary()
        for status in ("active", "reauth_required", "failing"):
            metrics.SUBSCRIPTIONS.labels("all", status).set(counts.get(status, 0))
        if soonest is not None:
            metrics.NEXT_EXPIRY.set((soonest - now).total_seconds())
