"""Which event log backend a database gets (events/log.py's interface)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from notifier.events.log import EventLog
from notifier.events.log_postgres import PostgresEventLog
from notifier.events.log_sqlite import SqliteEventLog


def open_event_log(engine: AsyncEngine) -> EventLog:
    if engine.dialect.name == "postgresql":
        return PostgresEventLog(engine)
    return SqliteEventLog(engine)
