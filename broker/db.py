"""Engines and migrations for SQLite (the embedded default) and PostgreSQL."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
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


def wait_for_database(url: str, timeout: float, interval: float = 0.5) -> None:
    """Returns once a connection to the database succeeds; raises ConfigError naming the
    variable after `timeout` seconds of refused connections. `migrate` in compose can start
    while PostgreSQL is still initialising (its first server listens on no TCP port)."""
    parsed = sync_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    engine = create_engine(parsed, connect_args={"connect_timeout": max(1, int(interval * 4))})
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect():
                    return
            except OperationalError as exc:
                if time.monotonic() >= deadline:
                    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "refused"
                    raise ConfigError(
                        "BROKER_DATABASE_URL",
                        f"the database did not accept a connection within {timeout:g} s "
                        f"({reason})",
                    ) from None
                log.info("waiting for the database: %s", type(exc.orig).__name__)
                time.sleep(interval)
    finally:
        engine.dispose()


def migrate(url: str) -> None:
    """Brings the schema to the newest revision. Safe when several replicas start
    at once: PostgreSQL serialises them on an advisory lock, SQLite on a file lock."""
    parsed = sync_url(url)
    engine = create_engine(parsed)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            lock: contextlib.AbstractContextManager[None] = _file_lock(
                Path(str(parsed.database) + ".migrate-lock")
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
