"""Engines and migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from servicekit.config import ConfigError

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant works; it only has to be the same in every replica.
_PG_MIGRATION_LOCK = 0x20_4B_52


def _parse(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError("BROKER_DATABASE_URL", "not a SQLAlchemy database URL") from None
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError("BROKER_DATABASE_URL", "only sqlite and postgresql are supported")
    return parsed


def sync_url(url: str) -> URL:
    parsed = _parse(url)
    driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def async_url(url: str) -> URL:
    parsed = _parse(url)
    driver = "sqlite+aiosqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver)


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL (also in SQLite's URI form,
    `sqlite:///file:/path/broker.db?mode=ro&uri=true`); None for PostgreSQL or memory."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    database = str(parsed.database)
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        database = database.removeprefix("file:").split("?", 1)[0]
        if database in ("", ":memory:") or "mode=memory" in str(parsed.query.get("mode")):
            return None
    return Path(database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue
    # instead of failing when several broker processes share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_async_engine(url: str) -> AsyncEngine:
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_async_engine(parsed)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # pre_ping: after a PostgreSQL restart, stale pooled connections are replaced
    # instead of failing the next call.
    return create_async_engine(
        parsed, pool_size=10, max_overflow=10, pool_pre_ping=True, pool_timeout=10
    )


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def where(url: str) -> str:
    """The database in words, never its password."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        return f"the SQLite file {path}" if path else "the SQLite database"
    return f"PostgreSQL at {parsed.render_as_string(hide_password=True)}"


class DatabaseUnusable(ConfigError):
    """The database named by BROKER_DATABASE_URL cannot be used as it is (exit 2)."""

    def __init__(self, url: str, problem: str) -> None:
        super().__init__("BROKER_DATABASE_URL", f"{where(url)} {problem}")


# What SQLite and PostgreSQL say, and what an operator should read instead.
_FAULTS = (
    ("file is not a database", "is not a SQLite database (garbage, or not the broker's file)"),
    ("malformed", "is damaged (database disk image is malformed: truncated or corrupted)"),
    ("readonly", "is read-only: the broker must write it (file, directory or mount)"),
    ("read-only", "is read-only: the broker must write it (file, directory or mount)"),
    ("unable to open database file", "cannot be opened (a missing directory, or permissions)"),
    ("disk i/o error", "cannot be read or written (disk I/O error)"),
    ("database or disk is full", "cannot be written: the disk is full"),
    ("corrupt", "is damaged (corrupted data or index)"),
)


def describe_fault(exc: BaseException) -> str:
    """A database error in a sentence naming the problem (no SQL, no parameters)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    for marker, meaning in _FAULTS:
        if marker in text.lower():
            return meaning
    return f"failed: {type(orig).__name__}: {text[:200]}"


@contextlib.contextmanager
def start_fault_is_config_error(url: str) -> Iterator[None]:
    """At start, a database the broker cannot use stops it with one message naming the
    problem (exit 2 in cli.py) instead of a traceback."""
    try:
        yield
    except DBAPIError as exc:
        raise DatabaseUnusable(url, describe_fault(exc)) from None
    except OSError as exc:  # the migration lock file beside a SQLite database
        raise DatabaseUnusable(url, f"cannot be used: {exc}") from None


def check_usable(url: str) -> None:
    """At start: the tables read, and a write is accepted (then rolled back), so a
    read-only or damaged database is named now rather than by the first RPC."""
    engine = create_engine(sync_url(url))
    try:
        with start_fault_is_config_error(url), engine.connect() as connection:
            connection.execute(text("SELECT id FROM zoho_connections ORDER BY id LIMIT 1"))
            connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
            connection.rollback()
    finally:
        engine.dispose()


def migrate(url: str) -> None:
    """Brings the schema to the newest revision. Safe when several replicas start
    at once: PostgreSQL serialises them on an advisory lock, SQLite on a file lock."""
    with start_fault_is_config_error(url):
        _migrate(url)


def _migrate(url: str) -> None:
    parsed = sync_url(url)
    engine = create_engine(parsed)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        database_file = sqlite_file(url)
        if database_file is not None:
            lock: contextlib.AbstractContextManager[None] = _file_lock(
                database_file.with_name(database_file.name + ".migrate-lock")
            )
        else:
            lock = contextlib.nullcontext()
        with lock, engine.connect() as connection:
            if parsed.get_backend_name() == "postgresql":
                connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
                connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if parsed.get_backend_name() == "postgresql":
                    connection.execute(
                        text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK}
                    )
                    connection.commit()
    finally:
        engine.dispose()
    log.info("database schema is up to date")
