"""PostgreSQL restarted while callers run.

Injected: `pg_ctlcluster ... restart` of the test server while 4 callers ask for tokens
in a loop (BROKER_CACHE_SECONDS=0.2, so the broker keeps going back to the database).
Asserted: no INTERNAL or UNKNOWN, only answers and UNAVAILABLE; tokens kept being
served from what the broker holds during the outage; it reconnects by itself (reads and
writes within seconds); every row and token written before the restart is still there.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from pathlib import Path

import grpc
import psycopg
import pytest

from broker.storage.records import Connection
from sandbox.control.client import SandboxControl
from tests.plugins import broker_fixtures
from tests.plugins.broker_fixtures import POSTGRES_ADMIN_URL, MakeBroker
from zoho.broker.v1 import broker_pb2
from zoho.common.v1 import common_pb2

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.faults,
    # Restarting the shared server once per `make test` is enough: only on the PostgreSQL pass.
    pytest.mark.skipif(broker_fixtures.test_database_kind() != "postgres",
                       reason="restarts PostgreSQL; runs with TEST_DATABASE=postgres"),
]

USERS = ("u1", "u2", "u3")


def _cluster() -> list[str]:
    versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    if not versions:
        pytest.skip("no local PostgreSQL cluster to restart")
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _wait_until_accepting(limit: float = 60.0) -> None:
    stop = time.monotonic() + limit
    while True:
        try:
            with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > stop:
                raise
            time.sleep(0.2)


@pytest.fixture
def restart_postgres():
    command = _cluster()

    def restart() -> None:
        subprocess.run([*command, "restart"], check=True, capture_output=True, timeout=60)

    yield restart
    # Whatever happened in the test, leave the shared server up for everyone else.
    try:
        _wait_until_accepting(10)
    except psycopg.OperationalError:
        subprocess.run([*command, "start"], check=False, capture_output=True, timeout=60)
        _wait_until_accepting()


async def test_callers_are_served_through_a_restart_and_nothing_is_lost(
    make_broker: MakeBroker, sandbox: SandboxControl, restart_postgres
) -> None:
    handle = await make_broker(BROKER_CACHE_SECONDS="0.2")
    for user in USERS:
        refresh = await sandbox.add_refresh_token(user=user)
        await handle.connect(user_id=user, refresh_token=refresh)
    before: dict[str, Connection] = {}
    for user in USERS:
        record = await handle.broker.store.get(user)
        assert record is not None
        before[user] = record

    codes: Counter[str] = Counter()
    tokens_during: set[str] = set()
    stop = asyncio.Event()

    async def caller(n: int) -> None:
        while not stop.is_set():
            user = USERS[n % len(USERS)]
            try:
                reply = await handle.stub.GetToken(broker_pb2.GetTokenRequest(
                    user_id=user, app_type=common_pb2.APP_TYPE_CRM), timeout=5)
                codes["OK"] += 1
                tokens_during.add(reply.access_token)
            except grpc.aio.AioRpcError as err:
                codes[err.code().name] += 1
            await asyncio.sleep(0.01)

    callers = [asyncio.create_task(caller(n)) for n in range(4)]
    await asyncio.sleep(0.5)
    served_before = codes["OK"]
    await asyncio.to_thread(restart_postgres)
    served_during = codes["OK"] - served_before
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*callers)

    assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
    assert served_during > 0, codes  # answered from the tokens it holds
    assert tokens_during == {r.access_token for r in before.values()}

    # It reconnects by itself: a read and a write (a forced refresh) within seconds.
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            got = await handle.stub.GetConnection(
                broker_pb2.GetConnectionRequest(user_id="u1"), timeout=5)
            break
        except grpc.aio.AioRpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE
            assert loop.time() - started < 30, "the broker did not reconnect"
            await asyncio.sleep(0.2)
    assert got.status == broker_pb2.CONNECTION_STATUS_ACTIVE
    fresh = await handle.stub.RefreshToken(broker_pb2.RefreshTokenRequest(
        user_id="u1", rejected_access_token=before["u1"].access_token), timeout=10)
    assert fresh.access_token != before["u1"].access_token

    # Nothing written before the restart was lost.
    for user in USERS:
        after = await handle.broker.store.get(user)
        assert after is not None
        assert after.refresh_token == before[user].refresh_token
        if user != "u1":
            assert after.access_token == before[user].access_token
            assert after.version == before[user].version
    assert await handle.broker.store.count() == len(USERS)
