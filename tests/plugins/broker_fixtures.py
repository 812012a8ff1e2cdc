"""Broker fixtures: a real broker gRPC server on a free port, backed by a real
database (SQLite by default; PostgreSQL when TEST_DATABASE=postgres) and the sandbox.

- `database_url`: a fresh, migrated database for this test.
- `broker_env`: the environment a broker needs to talk to the sandbox (dict).
- `make_broker(**env overrides)`: starts another in-process broker on the same database.
- `broker`: one started broker (`.address`, `.stub`, `.connect(...)`, `.broker`).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import psycopg
import pytest
from sqlalchemy import create_engine, text

from broker.app import Broker
from broker.config import BrokerConfig
from broker.storage.tables import DATABASE
from sandbox.control.client import SandboxControl
from sandbox.demo.tenant import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REFRESH_TOKEN, DEMO_SCOPES
from servicekit.config import Env
from servicekit.runner import running
from servicekit.sealing import new_key_spec
from zoho.broker.v1 import broker_pb2, broker_pb2_grpc

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_KEY = new_key_spec("test1")


def test_database_kind() -> str:
    kind = os.environ.get("TEST_DATABASE", "sqlite")
    if kind not in {"sqlite", "postgres"}:
        raise RuntimeError(f"TEST_DATABASE must be sqlite or postgres, got {kind!r}")
    return kind


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"zoho_test_{uuid.uuid4().hex[:10]}"
    admin = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    DATABASE.migrate(url)
    try:
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_postgres(postgres_database: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    engine = create_engine(DATABASE.sync_url(postgres_database))
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE zoho_connections, zoho_refresh_audit RESTART IDENTITY"))
    engine.dispose()
    return postgres_database


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if test_database_kind() == "postgres":
        url: str = request.getfixturevalue("empty_postgres")
        return url
    url = f"sqlite:///{tmp_path}/broker.db"
    DATABASE.migrate(url)
    return url


@pytest.fixture
def broker_env(sandbox: SandboxControl, database_url: str) -> dict[str, str]:
    return {
        "BROKER_LISTEN": "127.0.0.1:0",
        "BROKER_DATABASE_URL": database_url,
        "BROKER_ENCRYPTION_KEY": TEST_KEY,
        "ZOHO_CLIENT_ID": DEMO_CLIENT_ID,
        "ZOHO_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "ZOHO_EXTRA_ORIGINS": sandbox.origin,
        "BROKER_ZOHO_TIMEOUT_SECONDS": "2",
    }


class ManualClock:
    """The broker's clock, moved by the test: expire tokens without sleeping."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class BrokerHandle:
    broker: Broker
    address: str
    channel: grpc.aio.Channel
    stub: broker_pb2_grpc.TokenBrokerServiceStub
    sandbox: SandboxControl
    connected: list[str] = field(default_factory=list)

    async def connect(
        self,
        user_id: str = "demo",
        refresh_token: str = DEMO_REFRESH_TOKEN,
        scopes: list[str] | None = None,
        desk_org_id: str = "",
    ) -> broker_pb2.Connection:
        """Imports a refresh token issued by the sandbox (one mint at Zoho)."""
        connection: broker_pb2.Connection = await self.stub.CreateConnection(
            broker_pb2.CreateConnectionRequest(
                user_id=user_id,
                accounts_server=self.sandbox.origin,
                refresh_token=refresh_token,
                api_domain=self.sandbox.origin,
                scopes=list(DEMO_SCOPES) if scopes is None else scopes,
                desk_org_id=desk_org_id,
            ),
            timeout=10,
        )
        return connection


MakeBroker = Callable[..., Awaitable[BrokerHandle]]


@pytest.fixture
async def make_broker(
    broker_env: dict[str, str], sandbox: SandboxControl
) -> AsyncIterator[MakeBroker]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(clock: Callable[..., Any] | None = None, **overrides: str) -> BrokerHandle:
            config = BrokerConfig.from_env(Env({**broker_env, **overrides}))
            broker = Broker(config, **({"clock": clock} if clock else {}))
            # The runner `zoho-broker` serves through, without the wait for a signal.
            address = await stack.enter_async_context(running(broker, grace=0, migrate=False))
            channel = grpc.aio.insecure_channel(address)
            stack.push_async_callback(channel.close)
            return BrokerHandle(
                broker, address, channel, broker_pb2_grpc.TokenBrokerServiceStub(channel), sandbox
            )

        yield start


@pytest.fixture
async def broker(make_broker: MakeBroker) -> BrokerHandle:
    return await make_broker()
