"""Wiring of live events: the notifier's database, the event log with its writer, tail,
pruner and (PostgreSQL) LISTEN, consumers, and the ingress. `zoho-notifier` runs all of it beside
the gRPC server; `zoho-notifier ingress` runs only the ingress half (database only: no
broker, no key)."""

from __future__ import annotations

import asyncio
import logging

import httpx

from notifier.config import EventsConfig
from notifier.consumers.service import Consumers
from notifier.database import DATABASE
from notifier.events.log_postgres import PostgresEventLog
from notifier.events.open_log import open_event_log
from notifier.events.pg_listen import PostgresListener
from notifier.events.retention import Pruner
from notifier.events.tail import LogTail
from notifier.events.watch import Watches
from notifier.events.writer import EventWriter
from notifier.ingress.desk_jwt import DeskKeys
from notifier.ingress.directory import SubscriptionDirectory
from notifier.ingress.outages import DATABASE_FAULTS, Outages
from notifier.ingress.server import Ingress
from servicekit.origins import OriginPolicy

log = logging.getLogger(__name__)


class LiveEvents:
    def __init__(
        self, config: EventsConfig, http: httpx.AsyncClient, policy: OriginPolicy, *, watch: bool
    ) -> None:
        self.config = config
        self.engine = DATABASE.make_async_engine(config.database_url)
        self.log = open_event_log(self.engine)
        self.tail = LogTail(self.log, poll_seconds=config.poll_seconds)
        self.watches = Watches(self.log, self.tail)
        self.writer = EventWriter(self.log, on_committed=self.tail.committed)
        self.consumers = Consumers(self.engine, self.log, self.tail, config.consumers)
        self.pruner = Pruner(
            self.log, config.event_retention_seconds,
            interval_seconds=config.prune_interval_seconds,
            before_delete=self.consumers.expire,
        )
        self.directory = SubscriptionDirectory(self.engine)
        self.outages = Outages(self.engine, self.writer)
        self.ingress = Ingress(
            self.directory,
            self.writer,
            DeskKeys(http, policy),
            max_body_bytes=config.ingress_max_body_bytes,
            read_timeout_seconds=config.ingress_read_timeout_seconds,
            jwks_url_override=config.desk_jwks_url,
            outages=self.outages,
            connections=config.ingress_connections,
            deliveries=config.ingress_deliveries,
        )
        self._watch = watch
        self.listener: PostgresListener | None = None
        if watch and isinstance(self.log, PostgresEventLog):
            conninfo = DATABASE.sync_url(config.database_url).set(drivername="postgresql")
            self.listener = PostgresListener(
                conninfo.render_as_string(hide_password=False), self.tail.wake
            )
        self.ingress_address = ""

    @property
    def public_url(self) -> str:
        return self.config.public_url or f"http://{self.ingress_address}"

    async def start(self, *, migrate: bool = True) -> str:
        """Everything but the gRPC server; returns the ingress's HOST:PORT."""
        if migrate:
            await asyncio.to_thread(DATABASE.migrate, self.config.database_url)
        self.writer.start()
        if self._watch:
            await self.tail.start()
            self.pruner.start()
            self.consumers.start()
            if self.listener is not None:
                self.listener.start()
        try:
            # Windows a replica wrote down but did not get to announce before it stopped.
            await self.outages.announce()
        except DATABASE_FAULTS as failed:
            log.warning("earlier outages not announced yet: %s", type(failed).__name__)
        self.ingress_address = await self.ingress.start(self.config.ingress_listen)
        log.info("ingress listening on %s (public %s)", self.ingress_address, self.public_url)
        return self.ingress_address

    async def stop(self) -> None:
        await self.ingress.stop()
        await self.outages.stop()
        if self.listener is not None:
            await self.listener.stop()
        await self.consumers.stop()
        await self.pruner.stop()
        await self.tail.stop()
        await self.writer.stop()
        await self.engine.dispose()
