"""The notifier as its tests (and anyone else's) use it: a real server on 127.0.0.1:0,
wired exactly as `zoho-notifier` wires it, talking to the real broker fixture and the
real sandbox. Its HTTP transport is the real one, wrapped to count requests in flight."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import httpx
import pytest
from sqlalchemy import create_engine, text

from notifier.app import NotifierApp
from notifier.capture.config import CaptureConfig
from notifier.config import EventsConfig, NotifierConfig, RetryPolicy
from notifier.database import DATABASE
from servicekit.config import ListenAddress
from servicekit.runner import running
from tests.plugins.broker_fixtures import TEST_KEY, test_database_kind
from zoho.notifier.v1 import notifier_pb2_grpc

NOTIFIER_TABLES = (
    "notifier_events, notifier_subscriptions, notifier_keeper_subscriptions, notifier_keeper_users,"
    " notifier_outages, notifier_consumers, notifier_consumer_deliveries,"
    " notifier_capture_cursors, notifier_capture_orgs, notifier_capture_credits"
)


class SpyTransport(httpx.AsyncBaseTransport):
    """The real transport, counting requests that start, end and are cancelled."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.started = 0
        self.in_flight = 0
        self.cancelled = 0
        self._changed = asyncio.Event()
        # Runs before each request leaves: tests use it to change the sandbox at an exact
        # point of a stream (invalidate the token before page 2, break page 2, ...).
        self.before: Callable[[httpx.Request, int], Awaitable[None]] | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.started += 1
        if self.before is not None:
            await self.before(request, self.started)
        self.in_flight += 1
        self._notify()
        try:
            return await self.inner.handle_async_request(request)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
            self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, condition: Callable[[SpyTransport], bool], limit: float = 10.0) -> None:
        """Waits for `condition` (a guard against hanging, not a timing assertion)."""
        async with asyncio.timeout(limit):
            while not condition(self):
                await self._changed.wait()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class NotifierHandle:
    app: NotifierApp
    address: str
    channel: grpc.aio.Channel
    stub: notifier_pb2_grpc.NotifierServiceStub
    http: SpyTransport


@pytest.fixture(scope="session")
def notifier_postgres(postgres_database: str) -> str:
    """The session's PostgreSQL database with the notifier's tables too (its own
    Alembic version table, as in production when both share one database)."""
    DATABASE.migrate(postgres_database)
    return postgres_database


@pytest.fixture
def notifier_database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, migrated notifier database for this test."""
    return fresh_notifier_database(test_database_kind(), request, tmp_path)


def fresh_notifier_database(kind: str, request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, migrated notifier database of `kind` (sqlite or postgres)."""
    if kind == "postgres":
        url: str = request.getfixturevalue("notifier_postgres")
        engine = create_engine(DATABASE.sync_url(url))
        with engine.begin() as conn:
            conn.execute(text(f"TRUNCATE {NOTIFIER_TABLES} RESTART IDENTITY"))
            conn.execute(text("UPDATE notifier_event_log_state SET pruned_through = 0"))
        engine.dispose()
        return url
    url = f"sqlite:///{tmp_path}/notifier.db"
    DATABASE.migrate(url)
    return url


def events_config(database_url: str, **overrides: object) -> EventsConfig:
    settings: dict[str, object] = {
        "database_url": database_url,
        "encryption_key": TEST_KEY,
        "ingress_listen": ListenAddress("127.0.0.1", 0),
        "poll_seconds": 0.2,
    }
    settings.update(overrides)
    return EventsConfig(**settings)  # type: ignore[arg-type]


def notifier_config(
    sandbox_origin: str,
    broker_target: str,
    database_url: str | None = None,
    **overrides: object,
) -> NotifierConfig:
    """`database_url`: by default a new SQLite file (migrated when the app starts)."""
    if database_url is None:
        database_url = f"sqlite:///{tempfile.mkdtemp(prefix='notifier-')}/notifier.db"
    settings: dict[str, object] = {
        "events": events_config(database_url),
        "listen": ListenAddress("127.0.0.1", 0),
        "broker_target": broker_target,
        "extra_origins": (sandbox_origin,),
        # Quick retries keep the suite fast; the bound is what the tests count.
        "retry": RetryPolicy(
            max_attempts=3,
            backoff_seconds=0.01,
            max_backoff_seconds=0.05,
            request_timeout_seconds=5.0,
        ),
        "health_interval_seconds": 0.1,
        # Change capture reads Zoho back on its own schedule: only its tests turn it on
        # (tests/capture/), so the others see the events their callbacks bring, no more.
        "capture": CaptureConfig(enabled=False),
    }
    settings.update(overrides)
    return NotifierConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def notifier(sandbox, broker, notifier_database_url) -> AsyncIterator[NotifierHandle]:
    spy = SpyTransport()
    app = NotifierApp(
        notifier_config(sandbox.origin, broker.address, notifier_database_url), transport=spy
    )
    # The runner `zoho-notifier` serves through, without the wait for a signal.
    async with running(app, grace=0, migrate=False) as address:
        channel = grpc.aio.insecure_channel(address)
        try:
            yield NotifierHandle(
                app, address, channel, notifier_pb2_grpc.NotifierServiceStub(channel), spy
            )
        finally:
            await channel.close()
