"""Change capture's loop, in every notifier replica: enrol new subscriptions' modules,
claim the windows that are due (a sweep, the catch-up at start, a gap the keeper saw, a
retry), read each back from Zoho and append what no callback brought, moving the
watermark with it. Replicas share the windows through fenced leases (store.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from notifier import app_types
from notifier.capture import metrics
from notifier.capture.config import CaptureConfig
from notifier.capture.credits import CreditBudget
from notifier.capture.crm_reads import CrmReads
from notifier.capture.desk_reads import DeskReads
from notifier.capture.reading import CaptureRead, Reader
from notifier.capture.scope import heard
from notifier.capture.store import CaptureStore, Claimed, LostLease, floor_second
from notifier.events.log import EventLog
from notifier.keeper.clock import Clock
from notifier.keeper.gaps import Announced, Gaps, Subscribed
from notifier.notifications import Notifications
from notifier.zoho_http import ZohoHttp
from servicekit.background import BackgroundTask
from servicekit.errors import ServiceError
from servicekit.origins import OriginPolicy

log = logging.getLogger(__name__)
SUMMARY_SECONDS = 5.0
# Failures worth retrying soon before a gap is announced; any other reason is announced
# at once (a missing scope, spent credits, Zoho refusing the read).
TRANSIENT = frozenset(
    {"ZOHO_UNAVAILABLE", "ZOHO_THROTTLED", "DEADLINE_EXCEEDED", "BACKEND_UNAVAILABLE"}
)
NEVER = timedelta(days=3650)


class Capture:
    def __init__(
        self,
        event_log: EventLog,
        notifications: Notifications,
        zoho: ZohoHttp,
        policy: OriginPolicy,
        gaps: Gaps,
        wake_tail: Callable[[], None],
        *,
        config: CaptureConfig,
        clock: Clock,
        retention: timedelta,
    ) -> None:
        self.config = config
        self.clock = clock
        # The event log's: a creation older than it is not told again (reading.py).
        self._retention = retention
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"[-64:]
        self.store = CaptureStore(event_log.engine, event_log)
        self.budget = CreditBudget(
            event_log.engine, config.credits_per_day, sweep_floor=config.sweep_floor_credits
        )
        self.reader = Reader(
            notifications, CrmReads(zoho), DeskReads(zoho), policy, self.budget, clock
        )
        self._gaps = gaps
        self._wake_tail = wake_tail
        self._limit = asyncio.Semaphore(config.concurrency)
        self._pending: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._task = BackgroundTask("capture")
        self._wake = asyncio.Event()
        self._summary_at = 0.0
        self._gap_reasons: set[str] = set()
        self._lagging: set[str] = set()
        self._lagging_apps: set[int] = set()

    async def start(self) -> None:
        await self.clock.sync()
        now = self.clock.now()
        await self.store.enrol(now)
        # This replica may have been down: every watermark is behind until read, up to
        # now (the ingress is back): so once the settle margin has passed now.
        await self.store.all_due_at(now + self._settle, "start")
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)

    def wake(self) -> None:
        self._wake.set()

    async def read_back(
        self, row: Announced, *, since: datetime | None, until: datetime
    ) -> None:
        """A window the keeper saw callbacks could not cover (a lapse, a repair): read it
        back at once instead of only announcing it. The watermark already knows where
        reading must start; `since`/`until` are logged."""
        log.info("subscription %s: reading back %s .. %s (gap)", row.id,
                 since.isoformat() if since else "creation", until.isoformat())
        # Read up to now (the channel is back): once the settle margin has passed it.
        await self.store.want_at(row.id, self.clock.now() + self._settle, "gap")
        self.wake()

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

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("capture tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.tick_seconds)
            self._wake.clear()

    async def tick(self) -> None:
        await self.clock.sync()
        now = self.clock.now()
        await self.store.enrol(now)
        room = self.config.concurrency * 4 - len(self._pending)
        if room > 0:
            due = [
                r for r in await self.store.due(now, room)
                if (r.subscription_id, r.module) not in self._pending
            ]
            until = now + timedelta(seconds=self.config.lease_seconds)
            for claimed in await self.store.claim(due, self.owner, until, now):
                key = (claimed.row.subscription_id, claimed.row.module)
                task = asyncio.create_task(self._read(claimed))
                self._pending[key] = task
                task.add_done_callback(self._forget(key))
        if time.monotonic() >= self._summary_at:
            self._summary_at = time.monotonic() + SUMMARY_SECONDS
            await self.publish(now)

    def _forget(self, key: tuple[str, str]) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._pending.pop(key, None)

        return forget

    @property
    def _settle(self) -> timedelta:
        return timedelta(seconds=self.config.settle_seconds)

    def _next_sweep(self, now: datetime) -> datetime:
        sweep = self.config.sweep_seconds
        return now + (timedelta(seconds=sweep) if sweep > 0 else NEVER)

    async def _read(self, claimed: Claimed) -> None:
        row = claimed.row
        now = self.clock.now()
        # Never the newest seconds: their callbacks may still be on their way.
        until = floor_second(now - self._settle)
        if until <= row.covered_until:
            await self.store.finish(claimed, read_at=self._next_sweep(now), cause="sweep")
            return
        read = CaptureRead(
            self.store, claimed, until,
            heard(row.app_type, row.events).get(row.module, set()),
            lease=timedelta(seconds=self.config.lease_seconds), wake_tail=self._wake_tail,
            clock=self.clock, retention=self._retention,
        )
        async with self._limit:
            try:
                outcome = await self.reader.read(read, sweeping=row.cause == "sweep")
            except LostLease:
                metrics.READS.labels(app_types.name(row.app_type), row.cause, "lost_lease").inc()
                log.info("%s/%s: another replica took the window over", row.subscription_id,
                         row.module)
                return
            except ServiceError as failed:
                await self._failed(claimed, read, failed)
                return
            except Exception as failed:  # a bug or an unreadable answer: retried, announced
                log.exception("reading back %s/%s failed", row.subscription_id, row.module)
                await self._failed(claimed, read, ServiceError(type(failed).__name__))
                return
        metrics.READS.labels(app_types.name(row.app_type), row.cause, outcome).inc()
        if read.recovered:
            metrics.RECOVERED.labels(
                app_types.name(row.app_type), row.module, row.cause
            ).inc(read.recovered)
            log.info("subscription %s: %d %s change(s) read back (%s, %s .. %s)",
                     row.subscription_id, read.recovered, row.module, row.cause,
                     row.covered_until.isoformat(), read.covered.isoformat())
        if row.failing_reason:
            log.info("subscription %s: %s read back again after %s", row.subscription_id,
                     row.module, row.failing_reason)
        # The next sweep counts from when this read began, so a slow read does not
        # stretch the period (one that took longer is due again at once).
        await self.store.finish(
            claimed, read_at=self._next_sweep(now), cause="sweep", attempts=0,
            failing_reason=None, gap_announced=False,
        )
        if row.failing_reason:
            await self.store.clear_error(row.subscription_id)

    async def _failed(self, claimed: Claimed, read: CaptureRead, failed: ServiceError) -> None:
        row = claimed.row
        reason = failed.reason
        attempts = row.attempts + 1
        transient = reason in TRANSIENT and attempts < self.config.transient_attempts
        announce = not row.gap_announced and not transient
        if announce:
            # Once per window, however many attempts follow.
            await self._gaps.emit(
                Subscribed(row.subscription_id, row.user_id, row.app_type),
                since=read.covered, until=read.until, reason=reason, details=failed.metadata,
            )
        wait = failed.retry_after or min(
            self.config.retry_base_seconds * 2 ** (attempts - 1), self.config.retry_max_seconds
        )
        now = self.clock.now()
        await self.store.finish(
            claimed, error=f"{reason}: {failed}", failing_reason=reason[:40],
            attempts=attempts, gap_announced=row.gap_announced or announce,
            read_at=now + timedelta(seconds=max(wait, 1.0)), cause="retry",
        )
        metrics.READS.labels(app_types.name(row.app_type), row.cause, reason).inc()
        log.warning("subscription %s: %s could not be read back from %s (%s, attempt %d)",
                    row.subscription_id, row.module, read.covered.isoformat(), reason, attempts)

    async def publish(self, now: datetime) -> None:
        """The gauges every replica publishes alike from the shared database (alerts take
        max/min over replicas): watermark lag, open gap windows, credits left."""
        lags, gaps = await self.store.summary()
        worst: dict[int, float] = {}
        current = set()
        for subscription_id, app, covered in lags:
            lag = (now - covered).total_seconds()
            metrics.LAG.labels(subscription_id).set(lag)
            current.add(subscription_id)
            worst[app] = max(worst.get(app, 0.0), lag)
        for gone in self._lagging - current:  # deleted subscriptions leave the gauge
            metrics.LAG.remove(gone)
        self._lagging = current
        for app, lag in worst.items():
            metrics.MAX_LAG.labels(app_types.name(app)).set(lag)
        # An app with no captured subscription left has no lag, not its last one (which
        # would hold a lag alert firing for ever).
        for app in self._lagging_apps - set(worst):
            metrics.MAX_LAG.remove(app_types.name(app))
        self._lagging_apps = set(worst)
        # A reason no window fails for any more reads 0, not its last count.
        self._gap_reasons.update(gaps)
        for reason in self._gap_reasons:
            metrics.OPEN_GAPS.labels(reason).set(gaps.get(reason, 0))
        metrics.CREDITS_PER_DAY.set(self.budget.per_day)
        for org, left in (await self.budget.remaining(now)).items():
            metrics.CREDITS_REMAINING.labels(org).set(left)
        await self.budget.prune(now)
