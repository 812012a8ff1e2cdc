"""Key rotation end to end, and what a wrong or missing key does.

Injected: a new key added in front of the ring, `zoho-broker reencrypt`, the old key
dropped; then rings that lack a key in use, or hold another key under the same id.
Asserted: every token still reads back unchanged with no new mint; a bad ring stops
the broker at start naming BROKER_ENCRYPTION_KEY; a row it cannot read is a
TOKEN_UNREADABLE error and stays exactly as stored.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import grpc
import pytest
from sqlalchemy import create_engine, text

from broker.app import Broker
from broker.config import BrokerConfig
from broker.storage import key_maintenance
from broker.storage.connection_store import ConnectionStore
from broker.storage.sealed_columns import KeyRing
from broker.storage.tables import DATABASE
from sandbox.control.client import SandboxControl
from servicekit.config import ConfigError, Env
from servicekit.sealing import new_key_spec
from tests.plugins.broker_fixtures import TEST_KEY, MakeBroker
from tests.plugins.processes import REPO_ROOT
from tests.rpc_errors import seen
from zoho.broker.v1 import broker_pb2

USERS = ("alice", "bob", "carol")


def stored_ciphertexts(database_url: str) -> dict[str, tuple[str, str]]:
    engine = create_engine(DATABASE.sync_url(database_url))
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT user_id, access_token, refresh_token FROM zoho_connections")).all()
    engine.dispose()
    return {r.user_id: (r.access_token, r.refresh_token) for r in rows}


def reencrypt(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", "reencrypt"], cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=60, env={**os.environ, **env},
    )


async def connect_users(make_broker: MakeBroker, sandbox: SandboxControl
                        ) -> tuple[dict[str, str], dict[str, str]]:
    """Connects USERS under TEST_KEY; returns their refresh tokens and access tokens."""
    handle = await make_broker()
    refresh = {u: await sandbox.add_refresh_token(user=u) for u in USERS}
    for user, token in refresh.items():
        await handle.connect(user_id=user, refresh_token=token)
    access = {u: (await handle.stub.GetToken(broker_pb2.GetTokenRequest(user_id=u),
                                             timeout=10)).access_token for u in USERS}
    return refresh, access


@pytest.mark.slow
async def test_add_reencrypt_drop_keeps_every_token_readable(
    make_broker: MakeBroker, sandbox: SandboxControl, broker_env: dict[str, str],
    database_url: str,
) -> None:
    refresh, access = await connect_users(make_broker, sandbox)
    mints = {u: await sandbox.mint_count(t) for u, t in refresh.items()}
    new_key = new_key_spec("k2")

    # 1. Add: the new key first, the old one still there. Old rows read; nothing rewritten.
    both = await make_broker(BROKER_ENCRYPTION_KEY=f"{new_key},{TEST_KEY}")
    for user in USERS:
        reply = await both.stub.GetToken(broker_pb2.GetTokenRequest(user_id=user), timeout=10)
        assert reply.access_token == access[user]
    assert {v[1].split(":")[1] for v in stored_ciphertexts(database_url).values()} == {"test1"}

    # 2. Re-encrypt with the real command.
    done = reencrypt({**broker_env, "BROKER_ENCRYPTION_KEY": f"{new_key},{TEST_KEY}"})
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 3 of 3 connections under key 'k2'" in done.stdout
    assert {(a.split(":")[1], r.split(":")[1])
            for a, r in stored_ciphertexts(database_url).values()} == {("k2", "k2")}

    # 3. Drop the old key: a broker with the new key alone starts and reads every token.
    only_new = await make_broker(BROKER_ENCRYPTION_KEY=new_key)
    for user in USERS:
        reply = await only_new.stub.GetToken(broker_pb2.GetTokenRequest(user_id=user),
                                             timeout=10)
        assert reply.access_token == access[user]
        record = await only_new.broker.store.get(user)
        assert record is not None and record.refresh_token == refresh[user]
    assert {u: await sandbox.mint_count(t) for u, t in refresh.items()} == mints


@pytest.mark.slow
@pytest.mark.parametrize("ring", ["missing", "same_id_other_bytes"])
async def test_a_ring_that_cannot_read_the_rows_stops_the_broker_at_start(
    make_broker: MakeBroker, sandbox: SandboxControl, broker_env: dict[str, str],
    database_url: str, ring: str,
) -> None:
    await connect_users(make_broker, sandbox)
    before = stored_ciphertexts(database_url)
    spec = new_key_spec("k9") if ring == "missing" else new_key_spec("test1")
    config = BrokerConfig.from_env(Env({**broker_env, "BROKER_ENCRYPTION_KEY": spec}))
    broker = Broker(config)
    try:
        with pytest.raises(ConfigError) as caught:
            await broker.start(migrate=False)
    finally:
        await broker.stop(0)
    assert caught.value.variable == "BROKER_ENCRYPTION_KEY"
    assert ("not in the ring" if ring == "missing" else "same id") in str(caught.value)
    assert stored_ciphertexts(database_url) == before


@pytest.mark.slow
def test_the_process_exits_2_naming_the_variable(
    broker_env: dict[str, str], database_url: str
) -> None:
    # One row under a key the process will not have.
    async def seed() -> None:
        from broker.core.tokens import utc_now
        from broker.storage.records import AuditEntry, NewConnection

        store = ConnectionStore(DATABASE.make_async_engine(database_url), KeyRing.parse(TEST_KEY))
        now = utc_now()
        await store.put(
            NewConnection("dora", "at", "rt", now, "https://www.zohoapis.com",
                          "https://accounts.zoho.com", ("ZohoCRM.notifications.READ",), ""),
            now, AuditEntry("dora", "create", "success", 0, "h", "test"))
        await store.engine.dispose()

    asyncio.run(seed())
    env = {**broker_env, "BROKER_ENCRYPTION_KEY": new_key_spec("k9")}
    done = subprocess.run([sys.executable, "-m", "broker", "serve", "--no-migrate"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})
    assert done.returncode == 2
    assert "BROKER_ENCRYPTION_KEY" in done.stderr and "'test1'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.slow
async def test_a_row_under_an_unknown_key_is_a_clear_error_and_is_not_overwritten(
    make_broker: MakeBroker, sandbox: SandboxControl, broker_env: dict[str, str],
    database_url: str,
) -> None:
    refresh, _ = await connect_users(make_broker, sandbox)
    running = await make_broker(BROKER_CACHE_SECONDS="0")
    # Another replica, configured with a newer ring, re-keys the rows while this one runs.
    newer = ConnectionStore(DATABASE.make_async_engine(database_url),
                            KeyRing.parse(f"{new_key_spec('k3')},{TEST_KEY}"))
    try:
        await key_maintenance.reencrypt_all(newer)
    finally:
        await newer.engine.dispose()
    before = stored_ciphertexts(database_url)
    mints = await sandbox.mint_count(refresh["bob"])
    for call in (
        running.stub.GetToken(broker_pb2.GetTokenRequest(user_id="bob", min_ttl_seconds=3000),
                              timeout=10),
        running.stub.RefreshToken(broker_pb2.RefreshTokenRequest(
            user_id="bob", rejected_access_token="x"), timeout=10),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        error = seen(caught.value)
        assert error.code == grpc.StatusCode.INTERNAL
        assert error.reason == "TOKEN_UNREADABLE"
        assert error.metadata == {"key_id": "k3"}
        assert "BROKER_ENCRYPTION_KEY" in error.message
    assert stored_ciphertexts(database_url) == before
    assert await sandbox.mint_count(refresh["bob"]) == mints
