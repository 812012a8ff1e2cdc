"""The broker's database: its URL variable and migrations on servicekit's plumbing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit.database import DatabaseUnusable, ServiceDatabase, describe_fault

__all__ = [
    "DATABASE", "DatabaseUnusable", "async_url", "check_usable", "describe_fault",
    "make_async_engine", "migrate", "sqlite_file", "sync_url", "unusable", "wait_for_database",
    "where",
]

MIGRATIONS = Path(__file__).with_name("migrations")
DATABASE = ServiceDatabase("BROKER_DATABASE_URL", MIGRATIONS)


def sync_url(url: str) -> URL:
    return DATABASE.sync_url(url)


def async_url(url: str) -> URL:
    return DATABASE.async_url(url)


def sqlite_file(url: str) -> Path | None:
    return DATABASE.sqlite_file(url)


def where(url: str) -> str:
    return DATABASE.where(url)


def unusable(url: str, problem: str) -> DatabaseUnusable:
    return DATABASE.unusable(url, problem)


def make_async_engine(url: str) -> AsyncEngine:
    return DATABASE.make_async_engine(url)


def check_usable(url: str) -> None:
    DATABASE.check_usable(url, "SELECT id FROM zoho_connections ORDER BY id LIMIT 1")


def wait_for_database(url: str, timeout: float, interval: float = 0.5) -> None:
    DATABASE.wait_for(url, timeout, interval)


def migrate(url: str) -> None:
    DATABASE.migrate(url)
