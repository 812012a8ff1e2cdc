"""Engines and migrations for SQLite (the embedded default) and PostgreSQL, for any
service with its own tables and Alembic scripts (the broker's, the notifier's)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from servicekit.config import ConfigError

log = logging.getLogger(__name__)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in Python whatever the database keeps.

    SQLite has no time zones and compares datetimes as text, so it gets naive
    UTC in one format; PostgreSQL gets timestamptz.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes writers queue
    # instead of failing when several processes share the file.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# What SQLite and PostgreSQL say, and what an operator should read instead.
_FAULTS = (
    ("file is not a database", "is not a SQLite database (garbage, or not this service's file)"),
    ("malformed", "is damaged (database disk image is malformed: truncated or corrupted)"),
    ("readonly", "is read-only: the service must write it (file, directory or mount)"),
    ("read-only", "is read-only: the service must write it (file, directory or mount)"),
    ("unable to open database file", "cannot be opened (a missing directory, or permissions)"),
    ("disk i/o error", "cannot be read or written (disk I/O error)"),
    ("database or disk is full", "cannot be written: the disk is full"),
    ("corrupt", "is damaged (corrupted data or index)"),
)


def describe_fault(exc: BaseException) -> str:
    """A database error in a sentence naming the problem (no SQL, no parameters)."""
    orig = getattr(exc, "orig", None) or exc
    words = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    for marker, meaning in _FAULTS:
        if marker in words.lower():
            return meaning
    return f"failed: {type(orig).__name__}: {words[:200]}"


class DatabaseUnusable(ConfigError):
    """The database a service's variable names cannot be used as it is (exit 2)."""

    def __init__(self, env_var: str, where: str, problem: str) -> None:
        super().__init__(env_var, f"{where} {problem}")


@dataclass(frozen=True)
class ServiceDatabase:
    """One service's database: the variable naming it, its migrations, and the Alembic
    version table (each service its own, so two services may share one PostgreSQL)."""

    env_var: str
    migrations: Path
    version_table: str = "alembic_version"
    # Any constant works; it only has to be the same in every replica of the service.
    migration_lock_key: int = 0x20_4B_52

    def parse(self, url: str) -> URL:
        try:
            parsed = make_url(url)
        except Exception:
            raise ConfigError(self.env_var, "not a SQLAlchemy database URL") from None
        if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ConfigError(self.env_var, "only sqlite and postgresql are supported")
        return parsed

    def sync_url(self, url: str) -> URL:
        parsed = self.parse(url)
        driver = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql+psycopg"
        return parsed.set(drivername=driver)

    def async_url(self, url: str) -> URL:
        parsed = self.parse(url)
        sqlite = parsed.get_backend_name() == "sqlite"
        return parsed.set(drivername="sqlite+aiosqlite" if sqlite else "postgresql+psycopg")

    def make_async_engine(self, url: str, *, pool_size: int = 10) -> AsyncEngine:
        parsed = self.async_url(url)
        if parsed.get_backend_name() == "sqlite":
            engine = create_async_engine(parsed)
            event.listen(engine.sync_engine, "connect", sqlite_pragmas)
            return engine
        # pre_ping: after a PostgreSQL restart, stale pooled connections are replaced
        # instead of failing the next call.
        return create_async_engine(
            parsed, pool_size=pool_size, max_overflow=10, pool_pre_ping=True, pool_timeout=10
        )

    def sqlite_file(self, url: str) -> Path | None:
        """The file of an SQLite database URL (also in SQLite's URI form,
        `sqlite:///file:/path/x.db?mode=ro&uri=true`); None for PostgreSQL or memory."""
        parsed = self.parse(url)
        if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
            return None
        database = str(parsed.database)
        if parsed.query.get("uri") == "true" and database.startswith("file:"):
            database = database.removeprefix("file:").split("?", 1)[0]
            if database in ("", ":memory:") or "mode=memory" in str(parsed.query.get("mode")):
                return None
        return Path(database)

    def where(self, url: str) -> str:
        """The database in words, never its password."""
        parsed = self.parse(url)
        if parsed.get_backend_name() == "sqlite":
            path = self.sqlite_file(url)
            return f"the SQLite file {path}" if path else "the SQLite database"
        return f"PostgreSQL at {parsed.render_as_string(hide_password=True)}"

    def unusable(self, url: str, problem: str) -> DatabaseUnusable:
        return DatabaseUnusable(self.env_var, self.where(url), problem)

    @contextlib.contextmanager
    def start_fault_is_config_error(self, url: str) -> Iterator[None]:
        """At start, a database the service cannot use stops it with one message naming
        the problem (exit 2) instead of a traceback."""
        try:
            yield
        except DBAPIError as exc:
            raise self.unusable(url, describe_fault(exc)) from None
        except OSError as exc:  # the migration lock file beside a SQLite database
            raise self.unusable(url, f"cannot be used: {exc}") from None

    def check_usable(self, url: str, probe_query: str) -> None:
        """At start: `probe_query` (the service's own constant) reads, and a write is
        accepted (then rolled back), so a read-only or damaged database is named now
        rather than by the first call."""
        engine = create_engine(self.sync_url(url))
        try:
            with self.start_fault_is_config_error(url), engine.connect() as connection:
                connection.execute(text(probe_query))
                connection.execute(text(
                    f"UPDATE {self.version_table} SET version_num = version_num"  # noqa: S608
                ))
                connection.rollback()
        finally:
            engine.dispose()

    def wait_for(self, url: str, timeout: float, interval: float = 0.5) -> None:
        """Returns once a connection succeeds; raises ConfigError naming the variable after
        `timeout` seconds of refused connections. A migration in compose can start while
        PostgreSQL is still initialising (its first server listens on no TCP port)."""
        parsed = self.sync_url(url)
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
                            self.env_var,
                            f"the database did not accept a connection within {timeout:g} s "
                            f"({reason})",
                        ) from None
                    log.info("waiting for the database: %s", type(exc.orig).__name__)
                    time.sleep(interval)
        finally:
            engine.dispose()

    def migrate(self, url: str) -> None:
        """Brings the schema to the newest revision. Safe when several replicas start
        at once: PostgreSQL serialises them on an advisory lock, SQLite on a file lock."""
        with self.start_fault_is_config_error(url):
            self._migrate(url)

    def _migrate(self, url: str) -> None:
        parsed = self.sync_url(url)
        postgres = parsed.get_backend_name() == "postgresql"
        engine = create_engine(parsed)
        if not postgres:
            event.listen(engine, "connect", sqlite_pragmas)
        config = Config()
        config.set_main_option("script_location", str(self.migrations))
        config.attributes["version_table"] = self.version_table
        key = {"k": self.migration_lock_key}
        try:
            database_file = self.sqlite_file(url)
            if database_file is not None:
                lock: contextlib.AbstractContextManager[None] = _file_lock(
                    database_file.with_name(database_file.name + ".migrate-lock")
                )
            else:
                lock = contextlib.nullcontext()
            with lock, engine.connect() as connection:
                if postgres:
                    connection.execute(text("SELECT pg_advisory_lock(:k)"), key)
                    connection.commit()
                try:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    connection.commit()
                finally:
                    if postgres:
                        connection.execute(text("SELECT pg_advisory_unlock(:k)"), key)
                        connection.commit()
        finally:
            engine.dispose()
        log.info("database schema is up to date (%s)", self.env_var)
