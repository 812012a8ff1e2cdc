"""Encryption at rest, key handling, and migrations, against the real database."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from broker.config import BrokerConfig
from broker.storage import key_maintenance
from broker.storage.connection_store import ConnectionStore
from broker.storage.sealed_columns import KeyRing, load_key_ring
from broker.storage.tables import DATABASE
from servicekit.config import ConfigError, Env
from servicekit.errors import DecryptError
from servicekit.sealing import new_key_spec
from tests.plugins.broker_fixtures import TEST_KEY, BrokerHandle


def test_ciphertext_is_bound_to_its_row_and_column() -> None:
    ring = KeyRing.parse(new_key_spec("a"))
    sealed = ring.encrypt("secret-token", context="zoho_connections:access_token:alice")
    assert ring.decrypt(sealed, context="zoho_connections:access_token:alice") == "secret-token"
    for other in ("zoho_connections:access_token:bob", "zoho_connections:refresh_token:alice"):
        with pytest.raises(DecryptError):
            ring.decrypt(sealed, context=other)


@pytest.mark.slow
async def test_ciphertext_copied_to_another_row_does_not_open(broker: BrokerHandle) -> None:
    for user in ("alice", "bob"):
        refresh = await broker.sandbox.add_refresh_token(user=user)
        await broker.connect(user_id=user, refresh_token=refresh)
    async with broker.broker.engine.begin() as conn:
        await conn.execute(text(
            "UPDATE zoho_connections SET refresh_token = "
            "(SELECT refresh_token FROM zoho_connections WHERE user_id = 'alice') "
            "WHERE user_id = 'bob'"
        ))
    with pytest.raises(DecryptError):
        await broker.broker.store.get("bob")
    assert (await broker.broker.store.get("alice")) is not None


def test_key_ring_errors_name_the_variable() -> None:
    for bad in ("nocolon", "k1:short", "k1:!!!!", f"{new_key_spec('k1')},{new_key_spec('k1')}"):
        with pytest.raises(ConfigError) as caught:
            KeyRing.parse(bad)
        assert str(caught.value).startswith("BROKER_ENCRYPTION_KEY")


def test_sqlite_without_a_key_generates_a_private_key_file(tmp_path: Path) -> None:
    database = tmp_path / "broker.db"
    ring = load_key_ring("", sqlite_path=database)
    key_file = tmp_path / "broker.db.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    again = load_key_ring("", sqlite_path=database)
    sealed = ring.encrypt("x", context="c")
    assert again.decrypt(sealed, context="c") == "x"


def test_other_databases_refuse_to_start_without_a_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_key_ring("", sqlite_path=None)
    assert caught.value.variable == "BROKER_ENCRYPTION_KEY"


def test_bad_configuration_names_the_variable() -> None:
    for env, variable in (
        ({"BROKER_REFRESH_WINDOW_SECONDS": "soon"}, "BROKER_REFRESH_WINDOW_SECONDS"),
        ({"BROKER_LISTEN": "nowhere"}, "BROKER_LISTEN"),
        ({"ZOHO_EXTRA_ORIGINS": "http://127.0.0.1:1/path"}, "ZOHO_EXTRA_ORIGINS"),
        ({"BROKER_MINT_BUDGET": "11"}, "BROKER_MINT_BUDGET"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ):
        with pytest.raises(ConfigError) as caught:
            BrokerConfig.from_env(Env(env))
        assert caught.value.variable == variable


@pytest.mark.slow
async def test_reencrypt_moves_every_row_to_the_first_key(
    broker: BrokerHandle, database_url: str
) -> None:
    for user in ("alice", "bob", "carol"):
        refresh = await broker.sandbox.add_refresh_token(user=user)
        await broker.connect(user_id=user, refresh_token=refresh)
    before = {u: await broker.broker.store.get(u) for u in ("alice", "bob", "carol")}
    new_key = new_key_spec("k2")
    rotated = KeyRing.parse(f"{new_key},{TEST_KEY}")
    store = ConnectionStore(DATABASE.make_async_engine(database_url), rotated)
    try:
        assert await key_maintenance.reencrypt_all(store) == (3, 3)
        assert await key_maintenance.reencrypt_all(store) == (3, 0)  # nothing left on the old key
        only_new = ConnectionStore(store.engine, KeyRing.parse(new_key))
        for user, record in before.items():
            after = await only_new.get(user)
            assert record is not None and after is not None
            assert (after.access_token, after.refresh_token) == (
                record.access_token, record.refresh_token)
    finally:
        await store.engine.dispose()


def test_migrate_is_idempotent(database_url: str) -> None:
    DATABASE.migrate(database_url)
    DATABASE.migrate(database_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_replicas_migrating_at_once_all_succeed(postgres_database: str) -> None:
    """Four brokers starting together on a fresh PostgreSQL database each migrate;
    the advisory lock serialises them and every one comes up."""
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    admin = postgres_database.rsplit("/", 1)[0] + "/postgres"
    name = f"zoho_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: DATABASE.migrate(url), range(4)))
        engine = create_engine(DATABASE.sync_url(url))
        with engine.connect() as conn:
            tables = set(conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        engine.dispose()
        assert {"zoho_connections", "zoho_refresh_audit", "alembic_version"} <= tables
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_sqlite_replicas_migrating_at_once_all_succeed(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    url = f"sqlite:///{tmp_path}/fresh.db"
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: DATABASE.migrate(url), range(4)))
    engine = create_engine(DATABASE.sync_url(url))
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM zoho_connections")).scalar_one()
    engine.dispose()
    assert count == 0
