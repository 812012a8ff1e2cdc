"""Deliveries the ingress refused because the database failed, and telling watchers.

Zoho never re-sends a delivery it could not make, so every 503 the ingress answers while
the database is down is an event lost for good. This replica keeps the window of its
refusals (the first and the last, and how many) in memory, since the database cannot
take it then; a probe asks the database once a second, and once it answers the window
is written to `notifier_outages` and announced as a `gap` event on every subscription
that existed by its end.

Every subscription, not only those the refused deliveries named: a refused delivery
could not be verified (its lookup is what failed), so the subscription id in its path is
only a claim, and a forged one must not make gaps appear in a user's stream, nor a
genuine one for a subscription missing from the claims go unannounced.

A window is announced once even when the announcement is retried (each gap's dedupe key
names the outage row), and one written but not yet announced when a replica stopped is
announced by the next replica that starts. A window still in memory when its replica
stops is lost (logged): the database was down, there was nowhere to keep it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from sqlalchemy import insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.app_types import AppType
from notifier.database.models import (
    STATUS_ACTIVE,
    STATUS_FAILING,
    STATUS_REAUTH_REQUIRED,
    OutageRow,
    SubscriptionRow,
)
from notifier.events.writer import EventWriter
from notifier.keeper.gaps import ReadBack, Subscribed, gap_event

log = logging.getLogger(__name__)

# What the database, its driver or its pool raise when it is down, restarting or slow.
DATABASE_FAULTS = (SQLAlchemyError, psycopg.Error)
# Told to a sender refused for a database fault (Zoho does not retry; a proxy may).
RETRY_AFTER_SECONDS = 5
PROBE_SECONDS = 1.0
# Gaps written per commit when a window is announced to many subscriptions.
ANNOUNCE_BATCH = 1000
_ANNOUNCED_STATUSES = (STATUS_ACTIVE, STATUS_FAILING, STATUS_REAUTH_REQUIRED)


class DatabaseDown(Exception):
    """The database failed, or did not answer in time, under a request."""


# What a request may fail with because of the database (the ingress answers 503).
REQUEST_FAULTS = (DatabaseDown, SQLAlchemyError, psycopg.Error)
# What the probe may meet while the database is still down.
_STILL_DOWN = (SQLAlchemyError, psycopg.Error, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class Outage:
    """A notifier_ingress_outages window: deliveries were refused from `started_at` to
    `ended_at` (the database was down) and it is not yet announced."""

    id: int
    started_at: datetime
    ended_at: datetime


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[-64:]


class Outages:
    def __init__(
        self, engine: AsyncEngine, writer: EventWriter, *, probe_seconds: float = PROBE_SECONDS
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._probe_seconds = probe_seconds
        self.replica = replica_name()
        self._started: datetime | None = None
        self._refused = 0
        self._probe: asyncio.Task[None] | None = None
        # Change capture (notifier/capture/), when this process runs it: each subscription
        # is read back over the window instead of told of a gap (SPEC, complete change
        # capture); an ingress-only replica announces gaps as before.
        self.read_back: ReadBack | None = None

    @property
    def open(self) -> bool:
        """A window of refusals not yet written down."""
        return self._started is not None

    def refused(self) -> None:
        """A delivery was just refused (503) for a database fault."""
        if self._started is None:
            self._started = datetime.now(UTC)
            log.warning("the database failed: deliveries are refused (503) until it answers")
        self._refused += 1
        if self._probe is None or self._probe.done():
            self._probe = asyncio.create_task(self._until_back(), name="outage-probe")

    async def stop(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        if self._started is not None:
            log.error("stopping with deliveries refused since %s (%d) not written down: "
                      "the database did not come back", self._started.isoformat(),
                      self._refused)

    async def _until_back(self) -> None:
        while True:
            await asyncio.sleep(self._probe_seconds)
            try:
                await self._close_window()
            except _STILL_DOWN as still:
                log.debug("the database is still failing: %s", type(still).__name__)
                continue
            return

    async def _close_window(self) -> None:
        started, refused = self._started, self._refused
        if started is not None:
            ended = datetime.now(UTC)
            async with asyncio.timeout(10), self._engine.begin() as conn:
                await conn.execute(insert(OutageRow).values(
                    replica=self.replica, started_at=started, ended_at=ended, refused=refused))
            # Refusals after `ended` open a window of their own.
            self._started, self._refused = None, 0
            log.warning("the database answers again: %d deliveries were refused between %s "
                        "and %s", refused, started.isoformat(), ended.isoformat())
        # Written down: announced now, or on the probe's next round if this fails.
        async with asyncio.timeout(60):
            await self.announce()

    async def announce(self) -> int:
        """Every written window not yet announced (any replica's): a gap event on each
        subscription that existed by the window's end. Returns how many windows."""
        o = OutageRow
        async with self._engine.connect() as conn:
            windows = [
                Outage(*row) for row in await conn.execute(
                    select(o.id, o.started_at, o.ended_at)
                    .where(o.announced_at.is_(None)).order_by(o.id)
                )
            ]
        for window in windows:
            await self._announce(window)
        return len(windows)

    async def _announce(self, window: Outage) -> None:
        s = SubscriptionRow
        async with self._engine.connect() as conn:
            rows = [
                Subscribed(sub_id, user_id, AppType(app_type))
                for sub_id, user_id, app_type in await conn.execute(
                    select(s.id, s.user_id, s.app_type)
                    .where(s.status.in_(_ANNOUNCED_STATUSES), s.created_at <= window.ended_at)
                    .order_by(s.id)
                )
            ]
        if self.read_back is not None:
            for row in rows:
                await self.read_back(row, since=window.started_at, until=window.ended_at)
        else:
            events = [
                gap_event(row, window.started_at, window.ended_at,
                          key=f"outage:{window.id}:{row.id}")
                for row in rows
            ]
            for start in range(0, len(events), ANNOUNCE_BATCH):
                await self._writer.append(events[start:start + ANNOUNCE_BATCH])
        async with self._engine.begin() as conn:
            await conn.execute(
                update(OutageRow).where(OutageRow.id == window.id)
                .values(announced_at=datetime.now(UTC))
            )
        done = "told the watchers of" if self.read_back is None else "read back"
        log.warning("%s %d subscriptions over the deliveries refused between %s and %s",
                    done, len(rows), window.started_at.isoformat(),
                    window.ended_at.isoformat())
