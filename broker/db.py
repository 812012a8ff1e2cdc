"""The broker's database: its URL variable and migrations on servicekit's plumbing."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from servicekit.database import ServiceDatabase

MIGRATIONS = Path(__file__).with_name("migrations")
DATABASE = ServiceDatabase("BROKER_DATABASE_URL", MIGRATIONS)


def sync_url(url: str) -> URL:
    return DATABASE.sync_url(url)


def async_url(url: str) -> URL:
    return DATABASE.async_url(url)


def make_async_engine(url: str) -> AsyncEngine:
    return DATABASE.make_async_engine(url)


def migrate(url: str) -> None:
    DATABASE.migrate(url)
