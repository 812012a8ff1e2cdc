"""The notifier's own database (NOTIFIER_DATABASE_URL): subscriptions and the event log."""

from __future__ import annotations

from pathlib import Path

from servicekit.database import ServiceDatabase

DEFAULT_URL = "sqlite:///zoho_notifier.db"
DATABASE = ServiceDatabase(
    "NOTIFIER_DATABASE_URL",
    Path(__file__).with_name("migrations"),
    # Its own version table: the notifier may share the broker's PostgreSQL database.
    version_table="notifier_alembic_version",
    migration_lock_key=0x4E_4F_54,
)
