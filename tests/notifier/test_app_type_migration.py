"""Migration n0006_app_type_numbers on a database holding rows in the old encoding ("crm" /
"desk" words in the subscriptions, the keeper's tables and capture's cursors): after the
upgrade the code reads them back as the contract's numbers, through its own stores;
after the downgrade the words are back. On SQLite by default, on PostgreSQL with
TEST_DATABASE=postgres (a database of its own, created at n0005_capture)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text

from notifier.app_types import CRM, DESK
from notifier.capture.models import CaptureCursor
from notifier.database import DATABASE
from notifier.database.models import Base
from notifier.keeper.reads import KeeperReads
from notifier.subscriptions import converters
from notifier.subscriptions.store import SubscriptionStore
from tests.plugins import broker_fixtures
from tests.plugins.broker_fixtures import POSTGRES_ADMIN_URL
from zoho.common.v1 import common_pb2

BEFORE = "n0005_capture"
THIS = "n0006_app_type_numbers"
NOW = datetime(2026, 3, 1, 9, 0, 0, tzinfo=UTC)
TABLES = (
    "notifier_subscriptions",
    "notifier_keeper_subscriptions",
    "notifier_keeper_users",
    "notifier_capture_cursors",
)


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    """A database with no notifier tables yet."""
    if broker_fixtures.test_database_kind() != "postgres":
        yield f"sqlite:///{tmp_path}/old.db"
        return
    name = f"zoho_test_n0006_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alembic(url: str, step: str, revision: str) -> None:
    """As servicekit's DATABASE.migrate runs it, to a chosen revision."""
    engine = create_engine(DATABASE.sync_url(url))
    config = Config()
    config.set_main_option("script_location", str(DATABASE.migrations))
    config.attributes["version_table"] = DATABASE.version_table
    try:
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            getattr(command, step)(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def _old_rows(url: str) -> None:
    """What n0005's code wrote: a CRM and a Desk subscription, their keeper rows and
    the CRM one's capture cursor, with app_type as the words."""
    engine = create_engine(DATABASE.sync_url(url))
    with engine.begin() as conn:
        for sub, app in (("sub_crm", "crm"), ("sub_desk", "desk")):
            conn.execute(text(
                "INSERT INTO notifier_subscriptions (id, user_id, app_type, events, status,"
                " zoho_id, secret_digest, desk_jwt_required, notify_on_related_action,"
                " return_affected_field_values, created_at, updated_at) VALUES (:id, 'demo',"
                " :app, '[\"Leads.all\"]', 'active', '17', :digest, false, false, false, :now,"
                " :now)"
            ), {"id": sub, "app": app, "digest": "0" * 64, "now": NOW})
            conn.execute(text(
                "INSERT INTO notifier_keeper_subscriptions (subscription_id, user_id,"
                " app_type, version, attempts) VALUES (:id, 'demo', :app, 0, 0)"
            ), {"id": sub, "app": app})
            conn.execute(text(
                "INSERT INTO notifier_keeper_users (user_id, app_type, version, reconcile_at)"
                " VALUES ('demo', :app, 0, :now)"
            ), {"app": app, "now": NOW})
        conn.execute(text(
            "INSERT INTO notifier_capture_cursors (subscription_id, module, user_id, app_type,"
            " covered_until, version, read_at, attempts, gap_announced, cause) VALUES"
            " ('sub_crm', 'Leads', 'demo', 'crm', :now, 0, :now, 0, false, 'sweep')"
        ), {"now": NOW})
    engine.dispose()


def _schema_drift(url: str) -> list[object]:
    """How the migrated tables differ from what the models declare (types included)."""
    engine = create_engine(DATABASE.sync_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return [
                diff for diff in compare_metadata(context, Base.metadata)
                if not (diff[0] == "remove_table" and diff[1].name == DATABASE.version_table)
            ]
    finally:
        engine.dispose()


def _raw_app_types(url: str) -> dict[str, list[object]]:
    engine = create_engine(DATABASE.sync_url(url))
    try:
        with engine.connect() as conn:
            return {
                table: sorted(conn.execute(text(f"SELECT app_type FROM {table}")).scalars(),
                              key=str)
                for table in TABLES
            }
    finally:
        engine.dispose()


async def test_old_words_are_read_back_as_numbers_and_downgrade_restores_them(
    empty_url: str,
) -> None:
    _alembic(empty_url, "upgrade", BEFORE)
    _old_rows(empty_url)

    DATABASE.migrate(empty_url)  # to head, as every replica does at start

    assert _schema_drift(empty_url) == []

    assert _raw_app_types(empty_url) == {
        "notifier_subscriptions": [1, 2],
        "notifier_keeper_subscriptions": [1, 2],
        "notifier_keeper_users": [1, 2],
        "notifier_capture_cursors": [1],
    }
    engine = DATABASE.make_async_engine(empty_url)
    try:
        store = SubscriptionStore(engine)
        crm, desk = await store.get("demo", "sub_crm"), await store.get("demo", "sub_desk")
        assert crm is not None and desk is not None
        assert (crm.app_type, desk.app_type) == (CRM, DESK)
        assert converters.subscription(crm).app_type == common_pb2.APP_TYPE_CRM
        assert converters.subscription(desk).app_type == common_pb2.APP_TYPE_DESK
        reads = KeeperReads(engine)
        users = await reads.due_users(NOW + timedelta(seconds=1), 10)
        assert sorted((u.user_id, u.app_type) for u in users) == [("demo", CRM), ("demo", DESK)]
        assert [r.id for r in await reads.user_subscriptions("demo", DESK)] == ["sub_desk"]
        async with engine.connect() as conn:
            cursor_app = (await conn.execute(select(CaptureCursor.app_type))).scalar_one()
        assert cursor_app == CRM
    finally:
        await engine.dispose()

    _alembic(empty_url, "downgrade", BEFORE)

    assert _raw_app_types(empty_url) == {
        "notifier_subscriptions": ["crm", "desk"],
        "notifier_keeper_subscriptions": ["crm", "desk"],
        "notifier_keeper_users": ["crm", "desk"],
        "notifier_capture_cursors": ["crm"],
    }


def test_an_unknown_word_stops_the_upgrade(empty_url: str) -> None:
    """Nothing is guessed: a value that is neither word leaves the schema at n0005."""
    _alembic(empty_url, "upgrade", BEFORE)
    _old_rows(empty_url)
    engine = create_engine(DATABASE.sync_url(empty_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE notifier_keeper_users SET app_type = 'books'"
                          " WHERE app_type = 'desk'"))
    engine.dispose()

    with pytest.raises(Exception, match=r"(?i)not.null|null value"):
        _alembic(empty_url, "upgrade", THIS)

    left = _raw_app_types(empty_url)
    assert left["notifier_keeper_users"] == ["books", "crm"]
    assert left["notifier_subscriptions"] == ["crm", "desk"]
